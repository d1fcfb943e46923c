"""``spikeforge olfaction {run,table}``: hybrid DECOLLE + STDP SNNs and Wang's ANN on the synthetic
odor task (Wang et al. 2021; vgp23/olfactory_network). Built on the experiment scaffold: the
packaged ``configs/olfaction.toml`` <- ``--config`` <- ``--set`` <- flags; one run per directory."""

from __future__ import annotations

import json
from pathlib import Path

from ..config import ConfigError
from ..experiments.olfaction_config import FLAGS, KC_SIZES, MODES, SPEC, TABLE_FLAGS, OlfactionConfig
from ..experiments.scaffold import (
    RunDir,
    add_arguments,
    check_device,
    flag_values,
    parallel,
    positive_int,
    resolve_args,
    resolve_config,
    start,
)


def add_parser(subparsers) -> None:
    top = subparsers.add_parser(
        "olfaction",
        help="DECOLLE / hybrid STDP SNNs and Wang's ANN on the synthetic olfaction task",
        description="Hybrid spiking networks (DECOLLE local learning, STDP blocks at any index) on the "
        "odor-classification task of Wang et al. (2021).",
    )
    sub = top.add_subparsers(dest="olfaction_command", metavar="STAGE")
    p = sub.add_parser(
        "run",
        help="train one network; writes results.json, a checkpoint and plots",
        description="Train one network (resumes a run in --out); writes results.json, checkpoint, "
        "accuracy.png, glomeruli.png, kc_weights.png and raster.png.",
    )
    add_arguments(p, SPEC, FLAGS, device=True)
    parallel.add_nproc_argument(p, "olfaction run")
    p.set_defaults(func=_run)
    t = sub.add_parser(
        "table",
        help="the four KC sizes x three modes; writes table.md/json and a bar chart",
        description="One run per KC size and mode in --out/kcN-MODE (finished runs are reused), then "
        "table.md, table.json and table.png.",
    )
    add_arguments(t, SPEC, TABLE_FLAGS, device=True)
    t.add_argument("--kc", type=positive_int, nargs="+", help=f"KC sizes (default: {' '.join(map(str, KC_SIZES))})")
    t.add_argument("--modes", nargs="+", choices=MODES, help=f"modes (default: {' '.join(MODES)})")
    t.add_argument("--reuse", action="store_true", help="use finished runs whatever their epoch count (default: off)")
    t.set_defaults(func=_table)
    top.set_defaults(func=lambda args: (top.print_help(), 2)[1])


def _run(args) -> int:
    from ..experiments.olfaction import run_in

    job = parallel.Job(_start_run, run_in, _report_run, OlfactionConfig, "run.batch_size", preflight=_preflight)
    return parallel.run_command(args, job)


def _start_run(args):
    return start(SPEC, args, FLAGS)


def _preflight(args) -> int:
    """The training batch size of the run in ``args.out`` (refused before any worker starts)."""
    cfg = resolve_args(SPEC, args, FLAGS)
    assert isinstance(cfg, OlfactionConfig)
    check_device(cfg.run.device)
    if cfg.run.device != "cpu" and (getattr(args, "nproc_per_node", None) or 1) > 1:
        raise ConfigError(
            f"run.device = {cfg.run.device!r}: data-parallel olfaction training runs on the CPU (gloo); "
            "use --device cpu with --nproc-per-node, or one process on the GPU"
        )
    return cfg.run.batch_size


def _report_run(rd, res: dict) -> None:
    c = res["connectivity"]
    summary = {"test_accuracy": res["test_accuracy"], "best_epoch": res["best_epoch"]}
    summary.update({"glo_score_orn": c.get("glo_score_orn"), "K_0.02": c.get("K_0.02"), "out": str(rd.path)})
    print(json.dumps(summary))


def _table(args) -> int:
    from ..experiments.olfaction import run_in
    from ..experiments.olfaction_report import write_table
    from ..experiments.scaffold.runtime import set_threads

    out = Path(args.out if args.out != SPEC.default_out else "runs/olfaction-table")
    values = flag_values(SPEC, args, TABLE_FLAGS)
    rows, preset = [], None
    for kc in args.kc or KC_SIZES:
        for mode in args.modes or MODES:
            rd = RunDir(out / f"kc{kc}-{mode}", SPEC, quiet=args.quiet)
            saved = None if args.fresh else rd.saved()
            cfg = resolve_config(
                SPEC,
                saved=saved,
                config_file=args.config,
                sets=args.set or [],
                values={**values, "run.kc": kc, "run.mode": mode},
            )
            assert isinstance(cfg, OlfactionConfig)
            preset = cfg.run.preset
            want = cfg.run.ann_epochs if mode == "ann" else cfg.resolved().run.epochs
            done = rd.read_results() if (saved is not None or args.reuse) else {}
            if done and (args.reuse or done.get("epochs") == want):
                rows.append(done)
                continue
            check_device(cfg.run.device)  # before the run directory is made
            set_threads(cfg.run.threads)
            if not args.quiet:
                print(f"--- {preset} KC = {kc} {mode} ---", flush=True)
            with rd.open(cfg, fresh=args.fresh):
                rows.append(run_in(rd))
    print(write_table(rows, out, preset or "small"), end="")
    return 0
