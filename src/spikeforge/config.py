"""Typed, validated parameter objects and TOML configs.

Every parameter set in spikeforge is a frozen pydantic model (:class:`Params`): unknown keys are
rejected, values are checked against their allowed range, and the error names the field, the value
and the range. Parameter objects are plain data, so they can be saved beside every checkpoint
(``to_dict``) and rebuilt exactly (``from_dict``).
"""

from __future__ import annotations

import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

P = TypeVar("P", bound="Params")


class ConfigError(ValueError):
    """A configuration value or file is invalid; the message names the field and the fix."""


def _section_class(cls: type[BaseModel], path: tuple) -> type[BaseModel] | None:
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
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"  {msg}" if loc == "(root)" else f"  {loc}: {msg}")
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
    if path.is_dir():
        raise ConfigError(f"config file {path} is a directory; give the path of a .toml file")
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


def apply_overrides(
    data: dict[str, Any], overrides: list[str], schema: type[BaseModel] | None = None
) -> dict[str, Any]:
    """Return a copy of a nested config dict with ``section.key=value`` overrides applied.

    With ``schema`` (a :class:`Params` class), every dotted path is checked against it first, so a
    typo in any part (``modle.exc.refractory_ms``) is an error naming the allowed keys."""
    out = json.loads(json.dumps(data))
    for text in overrides:
        path, value = parse_override(text)
        if schema is not None:
            check_path(schema, path, f"--set {text}")
        set_path(out, path, value, f"override '{text}'")
    return out


def set_path(data: dict[str, Any], path: list[str], value: Any, what: str = "setting") -> None:
    """``data[path[0]][path[1]]... = value``, creating sections on the way."""
    node = data
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{what}: '{part}' is not a section")
    node[path[-1]] = value


def get_path(data: dict[str, Any], path: str | list[str], default: Any = None) -> Any:
    """``data`` at a dotted path (``default`` where a part is missing)."""
    node: Any = data
    for part in path.split(".") if isinstance(path, str) else path:
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``update`` merged in: tables merge key by key at every depth, any
    other value (numbers, strings, lists) replaces the one below it. The one merge of spikeforge:
    packaged TOML <- ``--config`` file <- ``--set`` <- flags."""
    out = json.loads(json.dumps(base))
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = json.loads(json.dumps(value))
    return out


def _params_class(annotation: Any) -> type[BaseModel] | None:
    """The Params class of a field annotation (``X`` or ``X | None``), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):  # X | None
        for arg in typing.get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return None


def check_path(schema: type[BaseModel], path: list[str], what: str) -> None:
    """Raise :class:`ConfigError` unless ``path`` names a field of ``schema``, at every depth."""
    cls: type[BaseModel] | None = schema
    for depth, part in enumerate(path):
        fields = getattr(cls, "model_fields", None)
        where = ".".join(path[: depth + 1])
        if fields is None:
            raise ConfigError(f"{what}: '{'.'.join(path[:depth])}' is a value, not a section (no key '{where}')")
        if part not in fields:
            prefix = ".".join(path[:depth])
            allowed = ", ".join(sorted(fields))
            raise ConfigError(
                f"{what}: unknown key '{where}' (allowed keys{' in ' + prefix if prefix else ''}: {allowed})"
            )
        cls = _params_class(fields[part].annotation)


def check_keys(schema: type[BaseModel], data: dict[str, Any], source: str, prefix: str = "") -> None:
    """Raise :class:`ConfigError` for a key of ``data`` unknown to ``schema`` (at any depth), or a
    plain value where ``schema`` has a section (``model = 5``); ``source`` names the file."""
    fields = schema.model_fields
    for key, value in data.items():
        where = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(
                f"{source}: unknown key '{where}' "
                f"(allowed keys{' in ' + prefix[:-1] if prefix else ''}: {', '.join(sorted(fields))})"
            )
        sub = _params_class(fields[key].annotation)
        if sub is None:
            continue
        if isinstance(value, dict):
            check_keys(sub, value, source, where + ".")
        elif value is not None:
            raise ConfigError(
                f"{source}: '{where}' is a section (a [{where}] table with the keys "
                f"{', '.join(sorted(sub.model_fields))}), not the value {value!r}"
            )


def toml_value(v: Any) -> str:
    """One value as TOML text."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items() if x is not None) + "}"
    s = str(v).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{s}"'


def to_toml(d: dict[str, Any], prefix: str = "") -> str:
    """A nested dict as TOML text that :func:`load_toml` reads back (``None`` values are left out:
    TOML has no null; lists of tables become inline tables)."""
    lines = [f"{k} = {toml_value(v)}" for k, v in d.items() if not isinstance(v, dict) and v is not None]
    out = "\n".join(lines) + ("\n" if lines else "")
    for k, v in d.items():
        if isinstance(v, dict):
            name = f"{prefix}{k}"
            out += f"\n[{name}]\n" + to_toml(v, name + ".")
    return out
