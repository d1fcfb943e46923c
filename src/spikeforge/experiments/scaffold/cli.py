"""The command-line flags every experiment shares, declared once, and the one way a command turns
its arguments into an opened run directory with a resolved config."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from ...config import get_path, to_toml
from .rundir import RunDir
from .runtime import check_device, set_threads
from .spec import ExperimentSpec, Flag, resolve_config


def whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None


def positive_int(text: str) -> int:
    value = whole(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def nonneg_int(text: str) -> int:
    value = whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _fmt(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def add_arguments(
    parser: argparse.ArgumentParser,
    spec: ExperimentSpec,
    flags: Sequence[Flag] = (),
    *,
    threads: bool = True,
    device: bool = False,
) -> None:
    """Add the shared flags (``--out --config --set --seed --quiet --fresh --show-config``, and
    ``--threads`` / ``--device`` where the experiment uses them) and the experiment's own
    :class:`Flag` s to ``parser``; every help text ends with the default."""
    defaults = spec.default_config().to_dict()
    add = parser.add_argument
    add("--out", default=spec.default_out, metavar="RUN_DIR", help=f"run directory (default: {spec.default_out})")
    add(
        "--config",
        metavar="FILE.toml",
        help=f"TOML file merged over the packaged configs/{spec.default_toml} (default: none)",
    )
    add(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value, read as TOML (repeatable; default: none), e.g. --set "
        + (flags[0].key + "=..." if flags else "seed=1"),
    )
    if spec.seed_key:
        add("--seed", type=nonneg_int, help=f"seed of every random draw (default: {get_path(defaults, spec.seed_key)})")
    if threads:
        tdef = get_path(defaults, spec.threads_key) if spec.threads_key else "torch's choice"
        add("--threads", type=positive_int, help=f"CPU threads for torch and numba (default: {tdef})")
    if device:
        ddef = get_path(defaults, spec.device_key) if spec.device_key else None
        add("--device", help=f"torch device, e.g. cpu, cuda, cuda:1 (default: {_fmt(ddef) if ddef else 'cpu'})")
    add("--quiet", action="store_true", help="no progress bars or log lines (default: off)")
    add("--fresh", action="store_true", help="delete the run in --out and start again (default: off)")
    add("--show-config", action="store_true", help="print the resolved config as TOML and exit (default: off)")
    for f in flags:
        text = f"{f.help} (default: {_fmt(get_path(defaults, f.key))}; config key {f.key})"
        if f.type is bool:
            add(f.flag, dest=f.dest, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            add(f.flag, dest=f.dest, type=f.type, choices=f.choices, metavar=f.metavar, default=None, help=text)


def flag_values(spec: ExperimentSpec, args: argparse.Namespace, flags: Sequence[Flag] = ()) -> dict[str, Any]:
    """``{"dotted.key": value}`` of the flags given on the command line."""
    values = {f.key: getattr(args, f.dest, None) for f in flags}
    if spec.seed_key:
        values[spec.seed_key] = getattr(args, "seed", None)
    if spec.threads_key:
        values[spec.threads_key] = getattr(args, "threads", None)
    if spec.device_key:
        values[spec.device_key] = getattr(args, "device", None)
    return {k: v for k, v in values.items() if v is not None}


def resolve_args(spec: ExperimentSpec, args: argparse.Namespace, flags: Sequence[Flag] = (), run: RunDir | None = None):
    """The config :func:`start` runs with (the run directory's saved run, else the packaged TOML
    <- ``--config`` <- ``--set`` <- flags), without opening the run directory."""
    run = run or RunDir(args.out, spec)
    saved = None if getattr(args, "fresh", False) else run.saved()
    return resolve_config(
        spec,
        saved=saved,
        config_file=getattr(args, "config", None),
        sets=getattr(args, "set", []) or [],
        values=flag_values(spec, args, flags),
    )


def start(
    spec: ExperimentSpec, args: argparse.Namespace, flags: Sequence[Flag] = (), *, create: bool = True
) -> RunDir | None:
    """Resolve the config (the run directory's saved run, else the packaged TOML <- ``--config``
    <- ``--set`` <- flags), then open and lock the run directory, refusing a setting that disagrees
    with the saved run. Returns None after printing the config for ``--show-config``."""
    run = RunDir(args.out, spec, quiet=getattr(args, "quiet", False))
    cfg = resolve_args(spec, args, flags, run)
    if getattr(args, "show_config", False):
        print(to_toml(cfg.to_dict()), end="")
        return None
    if getattr(args, "device", None) is not None:
        check_device(args.device)
    set_threads(
        getattr(args, "threads", None) or (get_path(cfg.to_dict(), spec.threads_key) if spec.threads_key else None)
    )
    return run.open(cfg, fresh=getattr(args, "fresh", False), create=create)
