"""``spikeforge sweep EXPERIMENT --space FILE --study NAME`` and ``spikeforge sweep report``."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ..config import ConfigError
from .argtypes import positive_int, seed_set

_DEFAULT_ROOT = "runs/sweeps"


def _storage_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--study", required=True, help="study name, shared by every worker of the sweep (required; no default)"
    )
    p.add_argument(
        "--storage",
        help=f"SQLAlchemy URL of the study database, e.g. postgresql://user:pw@host/db "
        f"(default: an SQLite file ROOT/sweeps.db, ROOT = {_DEFAULT_ROOT})",
    )
    p.add_argument("--root", default=_DEFAULT_ROOT, help=f"where trial run directories go (default: {_DEFAULT_ROOT})")


def add_parser(sub) -> None:
    from ..sweep.targets import TARGETS

    p = sub.add_parser(
        "sweep",
        help="run an experiment over a search space (Optuna study on a database)",
        description="Run an experiment command over a search space written in TOML (grid, random or TPE "
        "sampling), each trial an ordinary run directory. Several workers (--jobs, or the same command on "
        "other machines with a shared --storage) share one study; re-running the command continues it.",
    )
    ss = p.add_subparsers(dest="sweep_command", metavar="EXPERIMENT|report")
    for name, target in [*TARGETS.items(), ("exec", None)]:
        e = ss.add_parser(
            name,
            help=target.description if target else "any command: --command 'prog --out {out} ...'",
            description=(target.description if target else "sweep any command")
            + ". Arguments after -- go to every run unchanged.",
        )
        e.add_argument(
            "--space", required=True, help="search-space TOML file, see docs/sweeps.md (required; no default)"
        )
        _storage_args(e)
        e.add_argument(
            "--trials",
            type=positive_int,
            help="configurations to try with random/tpe sampling (default: none; a grid runs all)",
        )
        e.add_argument("--jobs", type=positive_int, default=1, help="worker processes on this machine (default: 1)")
        e.add_argument(
            "--seeds",
            type=seed_set,
            help="run every configuration with each seed, e.g. 0,1,2 or 0-4 (default: the experiment's seed)",
        )
        e.add_argument("--sampler-seed", type=int, help="seed of the random/TPE sampler (default: none)")
        e.add_argument(
            "--heartbeat",
            type=positive_int,
            default=10,
            help="seconds between a worker's heartbeats; a trial silent for 3x this is failed "
            "and re-queued (default: 10)",
        )
        e.add_argument("--quiet", action="store_true", help="no progress lines (default: off)")
        e.add_argument("passthrough", nargs="*", metavar="-- ARGS", help="arguments given to every run unchanged")
        if target is None:
            e.add_argument(
                "--command", required=True, help="command line with {out} for the run directory (required; no default)"
            )
            e.add_argument(
                "--metric",
                required=True,
                help="dotted key of the metric in the run's results.json (required; no default)",
            )
            e.add_argument(
                "--history", help="dotted key of per-epoch records, with * for the list, for pruning (default: none)"
            )
            e.add_argument(
                "--direction",
                choices=("maximize", "minimize"),
                default="maximize",
                help="optimisation direction (default: maximize)",
            )
        e.set_defaults(func=_run, sweep_target=name)
    r = ss.add_parser("report", help="table (CSV, Markdown) and figures of a study")
    _storage_args(r)
    r.add_argument("--out", help="where the table and figures go (default: ROOT/STUDY)")
    r.add_argument("--metric", help="metric name for the table header (default: the study's)")
    r.set_defaults(func=_report)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _worker_argv(args) -> list[str]:
    """The command line of one worker (``--jobs 1``) of the same sweep."""
    argv = [
        "sweep",
        args.sweep_target,
        "--space",
        args.space,
        "--study",
        args.study,
        "--root",
        args.root,
        "--jobs",
        "1",
        "--heartbeat",
        str(args.heartbeat),
    ]
    for flag, value in (("--storage", args.storage), ("--trials", args.trials), ("--sampler-seed", args.sampler_seed)):
        if value is not None:
            argv += [flag, str(value)]
    if args.seeds:
        argv += ["--seeds", ",".join(str(s) for s in args.seeds)]
    if args.quiet:
        argv.append("--quiet")
    if args.sweep_target == "exec":
        argv += ["--command", args.command, "--metric", args.metric, "--direction", args.direction]
        if args.history:
            argv += ["--history", args.history]
    return argv + (["--", *args.passthrough] if args.passthrough else [])


def _run(args) -> int:
    from ..sweep.runner import SweepSettings, check_settings, spawn_workers, work
    from ..sweep.space import load_space, toml_value
    from ..sweep.study import default_storage, open_storage, open_study
    from ..sweep.targets import TARGETS, exec_target, validate_sets

    space = load_space(args.space)
    if args.sweep_target == "exec":
        target = exec_target(args.command, args.metric, args.history)
        direction = args.direction
    else:
        target = TARGETS[args.sweep_target]
        direction = target.direction
    direction = space.direction or direction
    root = Path(args.root)
    url = args.storage or default_storage(root)
    passthrough = list(args.passthrough)
    settings = SweepSettings(
        target=target,
        space=space,
        study_name=args.study,
        root=root,
        seeds=args.seeds,
        trials=args.trials,
        metric=space.metric or target.metric,
        passthrough=passthrough,
        heartbeat_s=args.heartbeat,
        quiet=args.quiet,
    )
    check_settings(settings)
    # the experiment validates every key and value of the first configuration before anything runs
    first = (
        space.grid()[0]
        if space.sampler == "grid"
        else {p.key: (p.choices[0] if p.choices is not None else p.low) for p in space.params}
    )
    with tempfile.TemporaryDirectory() as tmp:
        problem = validate_sets(target, {k: toml_value(v) for k, v in first.items()}, passthrough, Path(tmp))
    if problem:
        raise ConfigError(f"space file {args.space}: {target.name} refuses the swept settings: {problem}")
    storage = open_storage(url, heartbeat_s=args.heartbeat)
    study = open_study(
        args.study, storage, space, target.name, direction, args.seeds, settings.metric, args.sampler_seed, passthrough
    )
    if args.jobs > 1:  # the database and the study exist now, so the workers only join them
        return spawn_workers(_worker_argv(args), args.jobs)
    ran = work(settings, study, storage)
    if not args.quiet:
        again = f" --storage {args.storage}" if args.storage else ""
        print(f"[sweep {args.study}] worker done ({ran} trials run)")
        print(f"table: spikeforge sweep report --study {args.study} --root {args.root}{again}")
    return 0


def _report(args) -> int:
    from ..sweep.report import write_report
    from ..sweep.study import _optuna, check_reachable, default_storage

    optuna = _optuna()
    root = Path(args.root)
    url = args.storage or default_storage(root)
    if not args.storage and not (root / "sweeps.db").is_file():
        raise ConfigError(f"no sweep database at {root / 'sweeps.db'}; pass --root or --storage of the sweep")
    check_reachable(url)
    try:
        study = optuna.load_study(study_name=args.study, storage=url)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(url)]
        raise ConfigError(f"no study '{args.study}' in {url} (studies there: {', '.join(names) or 'none'})") from None
    metric = args.metric or study.user_attrs.get("metric", "metric")
    out = Path(args.out) if args.out else root / args.study
    rep = write_report(study, metric, out)
    print(rep["table"], end="")
    print(f"wrote {rep['csv']}, {rep['markdown']}" + "".join(f", {p}" for p in rep["figures"]))
    return 0
