"""``spikeforge diehl-cook {run,train,assign,test,plot}``: the Diehl & Cook (2015) experiment."""

from __future__ import annotations

import argparse
import json

from ..config import ConfigError
from ..plasticity import rule_names
from .argtypes import nonneg_int as _nonneg_int
from .argtypes import positive_int as _positive_int


def _common(p: argparse.ArgumentParser, stages: set[str]) -> None:
    p.add_argument("--out", default="runs/diehl-cook", help="run directory (default: runs/diehl-cook)")
    p.add_argument("--config", help="TOML file with [run] and [model.*] sections (see configs/diehl_cook.toml)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config value, e.g. --set model.exc.refractory_ms=50 (repeatable)",
    )
    p.add_argument("--neurons", type=_positive_int, help="excitatory neurons (default 100)")
    p.add_argument("--data-dir", help="MNIST IDX directory (default: $SPIKEFORGE_DATA, else the embedded subset)")
    p.add_argument("--seed", type=_nonneg_int)
    p.add_argument(
        "--engine",
        choices=("numba", "torch"),
        help="numba: compiled exact CPU engine (default); torch: batched, any device",
    )
    p.add_argument("--device", help="torch device, e.g. cuda or cpu (torch engine)")
    p.add_argument("--batch-size", type=_positive_int, help="torch engine: examples per batch")
    p.add_argument(
        "--rule",
        choices=rule_names(),
        help="STDP rule, from the registry in plasticity/stdp_registry.py (default triplet, the released code's rule)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    # every stage accepts every flag, so one command line can be reused for run/train/assign/test
    p.add_argument("--train-examples", type=_nonneg_int, help="training examples per epoch, from the start of the set")
    p.add_argument("--epochs", type=_nonneg_int)
    p.add_argument("--checkpoint-every", type=_positive_int)
    p.add_argument("--label-examples", type=_positive_int, help="training examples used to assign labels")
    p.add_argument("--test-examples", type=_positive_int, help="test images to classify")
    p.add_argument(
        "--record-examples",
        type=_nonneg_int,
        help="record the excitatory spikes of this many test examples (test_spikes.safetensors, test_raster.png)",
    )
    if stages & {"run", "test"}:
        p.add_argument(
            "--plot",
            action=argparse.BooleanOptionalAction,
            default=True,
            help="draw weights, theta histogram and confusion matrix (default on)",
        )


_FIELDS = (
    "neurons",
    "data_dir",
    "seed",
    "engine",
    "device",
    "batch_size",
    "train_examples",
    "epochs",
    "checkpoint_every",
    "label_examples",
    "test_examples",
    "record_examples",
)


def _experiment(args):
    from ..experiments.diehl_cook import Experiment

    fields = {k: getattr(args, k, None) for k in _FIELDS}
    overrides = list(args.set) + ([f'model.stdp.kind="{args.rule}"'] if args.rule else [])
    return Experiment.from_sources(args.out, args.config, overrides, fields, quiet=args.quiet)


def _cmd_run(args) -> int:
    exp = _experiment(args)
    res = exp.run_all(plot=args.plot)
    _summary(res, exp)
    return 0


def _cmd_train(args) -> int:
    exp = _experiment(args)
    prog = exp.train()
    print(json.dumps({k: prog[k] for k in ("examples_seen", "train_seconds", "epoch")}, indent=2))
    return 0


def _cmd_assign(args) -> int:
    exp = _experiment(args)
    _need_checkpoint(exp)
    exp.write_results(exp.assign())
    return 0


def _cmd_test(args) -> int:
    exp = _experiment(args)
    _need_checkpoint(exp)
    res = exp.write_results(exp.test())
    if args.plot:
        res["figures"] = exp.plot()
    _summary(res, exp)
    return 0


def _cmd_plot(args) -> int:
    exp = _experiment(args)
    _need_checkpoint(exp)
    for p in exp.plot():
        print(p)
    return 0


def _need_checkpoint(exp) -> None:
    from ..io.checkpoint import checkpoint_exists

    if not checkpoint_exists(exp.ckpt):
        raise ConfigError(f"no trained network in {exp.out}: run `spikeforge diehl-cook train --out {exp.out}` first")


def _summary(res, exp) -> None:
    keys = (
        "accuracy",
        "neurons",
        "train_examples_seen",
        "train_seconds",
        "train_examples_per_second",
        "label_examples",
        "test_examples",
        "engine",
        "seed",
    )
    print(json.dumps({k: res.get(k) for k in keys if k in res}, indent=2))
    print(f"results: {exp.results_path()}")


def add_parser(sub) -> None:
    dc = sub.add_parser(
        "diehl-cook",
        help="Diehl & Cook (2015) unsupervised digit recognition with STDP",
        description="Diehl & Cook (2015): conductance-based LIF, adaptive thresholds, "
        "lateral inhibition, triplet STDP; label assignment and voting.",
    )
    dsub = dc.add_subparsers(dest="stage", metavar="STAGE")
    for name, func, stages, help_ in (
        ("run", _cmd_run, {"run", "train", "assign", "test"}, "train, assign labels, test and plot"),
        ("train", _cmd_train, {"train"}, "train (or resume / continue training) with STDP"),
        ("assign", _cmd_assign, {"assign"}, "assign labels to neurons from training examples"),
        ("test", _cmd_test, {"test"}, "classify test images by voting"),
        ("plot", _cmd_plot, set(), "draw the learned weights and theta histogram"),
    ):
        p = dsub.add_parser(name, help=help_, description=help_)
        _common(p, stages)
        p.set_defaults(func=func)
    dc.set_defaults(func=lambda args: (dc.print_help(), 2)[1])
