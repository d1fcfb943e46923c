"""Typed, validated parameter objects and TOML configs.

Every parameter set in spikeforge is a frozen pydantic model (:class:`Params`): unknown keys are
rejected, values are checked against their allowed range, and the error names the field, the value
and the range. Parameter objects are plain data, so they can be saved beside every checkpoint
(``to_dict``) and rebuilt exactly (``from_dict``).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

P = TypeVar("P", bound="Params")


class ConfigError(ValueError):
    """A configuration value or file is invalid; the message names the field and the fix."""


def _section_class(cls: type, path: tuple) -> type | None:
    """The Params class of the nested section at ``path`` (None if it is not a section)."""
    for part in path:
        field = getattr(cls, "model_fields", {}).get(part)
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return None
        cls = field.annotation
    return cls


def _format_validation_error(cls: type, err: ValidationError) -> str:
    lines = [f"invalid {cls.__name__} configuration:"]
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(root)"
        if e["type"] == "extra_forbidden":
            section = _section_class(cls, tuple(e["loc"][:-1]))
            allowed = ", ".join(sorted(section.model_fields)) if section else "see the docs"
            lines.append(f"  unknown key '{loc}' (allowed keys: {allowed})")
        elif e["loc"] and not isinstance(e.get("input"), dict):
            lines.append(f"  {loc} = {e.get('input')!r}: {e['msg']}")
        else:  # a check across fields: the message names them; the whole section is not repeated
            lines.append(f"  {loc}: {e['msg']}")
    return "\n".join(lines)


class Params(BaseModel):
    """Base class of all parameter objects: frozen, no unknown keys, validated on creation."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    @classmethod
    def from_dict(cls: type[P], data: dict[str, Any] | None = None, **overrides: Any) -> P:
        merged = dict(data or {})
        merged.update(overrides)
        try:
            return cls.model_validate(merged)
        except ValidationError as err:
            raise ConfigError(_format_validation_error(cls, err)) from None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def replace(self: P, **changes: Any) -> P:
        """A copy with ``changes`` applied and validated again."""
        data = self.model_dump()
        for key, value in changes.items():
            if key not in type(self).model_fields:
                raise ConfigError(
                    f"unknown key '{key}' for {type(self).__name__} "
                    f"(allowed keys: {', '.join(sorted(type(self).model_fields))})"
                )
            data[key] = value
        return type(self).from_dict(data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file into a dict, with a clear error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse one ``--set section.key=value`` override; the value is read as TOML (numbers, bools,
    strings, lists), falling back to a bare string."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of a nested config dict with ``section.key=value`` overrides applied."""
    out = json.loads(json.dumps(data))
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{text}': '{part}' is not a section")
        node[path[-1]] = value
    return out
