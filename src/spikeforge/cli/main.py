"""The ``spikeforge`` command. Each experiment family registers its sub-commands from its own
module in :data:`COMMAND_MODULES` (``add_parser(subparsers)``), so adding one touches one line here.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__
from ..config import ConfigError

COMMAND_MODULES = (
    "spikeforge.cli.diehl_cook",
    "spikeforge.cli.data",
    "spikeforge.cli.tha",
    "spikeforge.cli.event_stdp",
    "spikeforge.cli.sweep",
    "spikeforge.cli.export",
    "spikeforge.cli.olfaction",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikeforge",
        description="Spiking neural networks trained with STDP and with surrogate gradients.",
    )
    parser.add_argument("--version", action="version", version=f"spikeforge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ConfigError, FileNotFoundError, ValueError) as err:
        print(f"spikeforge: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spikeforge: interrupted; run the same command again to resume from the last checkpoint", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
