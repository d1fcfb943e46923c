"""``spikeforge event-stdp run``: event-based STDP features on MNIST patches (Tavanaei et al. 2018),
evaluated by reconstruction and by a linear readout."""

from __future__ import annotations

import json

from ..experiments.event_stdp_config import FLAGS, SPEC
from ..experiments.scaffold import add_arguments, start


def add_parser(subparsers) -> None:
    top = subparsers.add_parser(
        "event-stdp",
        help="event-based STDP features on image patches (Tavanaei et al. 2018)",
        description="Learn features from MNIST patches with postsynaptic event-based STDP in a "
        "winner-take-all LIF layer, then reconstruct test images and train a linear readout.",
    )
    sub = top.add_subparsers(dest="event_stdp_command", metavar="STAGE")
    p = sub.add_parser(
        "run",
        help="learn features, reconstruct, train and test a linear readout",
        description="Writes results.json, config.toml, features/checkpoint files and "
        "figures to --out; an interrupted run resumes its feature training.",
    )
    add_arguments(p, SPEC, FLAGS)
    p.set_defaults(func=_run)
    top.set_defaults(func=lambda args: (top.print_help(), 2)[1])


def _run(args) -> int:
    from ..experiments.event_stdp import run_in

    rd = start(SPEC, args, FLAGS)
    if rd is None:
        return 0
    with rd:
        results = run_in(rd)
    keys = ("accuracy", "reconstruction_mse", "reconstruction_mse_random", "features", "patch_size", "stride")
    print(json.dumps({k: results[k] for k in (*keys, "train_seconds")}, indent=2))
    return 0
