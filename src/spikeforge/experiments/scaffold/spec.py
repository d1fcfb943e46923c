"""What an experiment declares (:class:`ExperimentSpec`, :class:`Flag`) and how its config is
resolved: one deep merge, every key checked against the schema at every depth."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...config import (
    ConfigError,
    Params,
    check_keys,
    check_path,
    deep_merge,
    load_toml,
    parse_override,
    set_path,
)

CONFIG_DIR = Path(__file__).resolve().parent.parent.parent / "configs"


@dataclass(frozen=True)
class Flag:
    """A command-line flag that sets one config key: ``Flag("--neurons", "model.network.n_neurons",
    positive_int, "excitatory neurons")``. Its default, shown in ``--help``, is read from the
    experiment's packaged TOML (or the schema), never written twice. ``type`` of ``bool`` makes a
    ``--x/--no-x`` pair; ``choices`` restricts the values."""

    flag: str
    key: str
    type: Callable[[str], Any] | type = str
    help: str = ""
    choices: Sequence[str] | None = None
    metavar: str | None = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class ExperimentSpec:
    """One experiment's declaration: its config schema (a :class:`~spikeforge.config.Params`
    holding every section), its packaged TOML default (file name under ``configs/``), its default
    run directory, where the shared flags land in the config (``seed_key``, ``threads_key``,
    ``device_key``: dotted keys, or None when the experiment has no such setting), and which keys
    may change on an existing run directory because they continue it (``continuable``: dotted keys
    or section prefixes); every other difference from the saved run is refused."""

    name: str
    schema: type[Params]
    default_toml: str
    default_out: str
    seed_key: str | None = "seed"
    threads_key: str | None = None
    device_key: str | None = None
    continuable: tuple[str, ...] = ()
    legacy: Callable[[dict[str, Any]], dict[str, Any]] | None = field(default=None, compare=False)

    @property
    def toml_path(self) -> Path:
        return CONFIG_DIR / self.default_toml

    def default_dict(self) -> dict[str, Any]:
        """The packaged TOML, as a dict (what the experiment runs with when given nothing)."""
        data = load_toml(self.toml_path)
        check_keys(self.schema, data, str(self.toml_path))
        return data

    def default_config(self) -> Params:
        return self.schema.from_dict(self.default_dict())

    def is_continuable(self, key: str) -> bool:
        return any(key == c or key.startswith(c + ".") for c in self.continuable)


def user_config(spec: ExperimentSpec, path: str | Path) -> dict[str, Any]:
    """A ``--config`` file: read, and every key checked against the schema (naming the file)."""
    data = load_toml(path)
    check_keys(spec.schema, data, f"config file {path}")
    return data


def resolve_config(
    spec: ExperimentSpec,
    *,
    saved: Mapping[str, Any] | None = None,
    config_file: str | Path | None = None,
    sets: Sequence[str] = (),
    values: Mapping[str, Any] | None = None,
) -> Params:
    """The one config of a run: ``saved`` (the run directory's config, if it holds a run) or the
    packaged TOML, then the ``--config`` file, then ``--set section.key=value`` overrides, then
    flag ``values`` (``{"dotted.key": value}``), merged key by key at every depth; validated."""
    data = json.loads(json.dumps(saved)) if saved is not None else spec.default_dict()
    if config_file:
        data = deep_merge(data, user_config(spec, config_file))
    for text in sets:
        path, value = parse_override(text)
        check_path(spec.schema, path, f"--set {text}")
        set_path(data, path, value, f"--set {text}")
    for key, value in (values or {}).items():
        if value is not None:
            check_path(spec.schema, key.split("."), f"setting {key}")
            set_path(data, key.split("."), value)
    return spec.schema.from_dict(data)


def diff(a: Any, b: Any, prefix: str = "", only_common: bool = False) -> list[tuple[str, Any, Any]]:
    """``(dotted key, value in a, value in b)`` for every leaf that differs; with ``only_common``,
    keys missing on one side are skipped (a run saved before a setting existed ran without it)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        keys = set(a) & set(b) if only_common else set(a) | set(b)
        for k in sorted(keys, key=str):
            out += diff(a.get(k), b.get(k), f"{prefix}{k}.", only_common)
        return out
    return [] if a == b else [(prefix[:-1], a, b)]


__all__ = ["CONFIG_DIR", "ConfigError", "ExperimentSpec", "Flag", "diff", "resolve_config", "user_config"]
