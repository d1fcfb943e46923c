"""Checkpoints: arrays and their metadata in ONE safetensors file, switched atomically.

A checkpoint named ``<prefix>`` is the file ``<prefix>.safetensors``: the arrays in the safetensors
format (no pickle anywhere, on save or on load) and, in the file's header, the JSON record
``{"meta": <your meta dict>, "checkpoint": {...}}`` where ``checkpoint`` records the format version,
the creation time (UTC), the versions of spikeforge, torch, numpy, safetensors and Python, the
name/dtype/shape of every array and the SHA-256 of the arrays' bytes.

Saving writes a temporary file, reads it back and verifies it, keeps the checkpoint it replaces as
``<prefix>.prev.safetensors`` (a hard link, so the switch costs no copy), and renames the new file
into place: one rename switches arrays and metadata together, so a run killed at any moment leaves
a complete checkpoint (the new one, or the old one plus its predecessor). Loading verifies the
checksum and, if the current file is missing or corrupt, falls back to the previous one with a
:class:`CheckpointFallbackWarning`.

Format version 1 (``<prefix>.safetensors`` + ``<prefix>.json``, written by spikeforge <= 0.1.0) is
still read; the next save replaces it with the single-file format.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..config import ConfigError
from .atomic import (  # noqa: F401  (the atomic writes are re-exported: they lived here)
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    atomic_writer,
    to_json_text,
)

FORMAT_NAME = "spikeforge-checkpoint"
FORMAT_VERSION = 2
DEFAULT_NAME = "checkpoint"
_HEADER_KEY = "spikeforge"


class CheckpointError(ConfigError):
    """A checkpoint is missing, corrupt, or does not match what the caller expects."""


class CheckpointFallbackWarning(UserWarning):
    """The current checkpoint was unusable and the previous one was loaded instead."""


class CheckpointPaths(NamedTuple):
    tensors: Path  # <prefix>.safetensors: the checkpoint
    meta: Path  # <prefix>.json: the metadata of a format-1 checkpoint (not written any more)
    previous: Path  # <prefix>.prev.safetensors: the checkpoint before the last save


def checkpoint_paths(path_dir_or_prefix: str | os.PathLike[str]) -> CheckpointPaths:
    """Resolve where a checkpoint lives.

    - an existing directory ``d`` (or a path ending with a separator) -> ``d/checkpoint.*``;
    - ``x.safetensors`` or ``x.json`` -> ``x.*``;
    - anything else is a prefix: ``runs/a/step100`` -> ``runs/a/step100.safetensors``.
    """
    text = os.fspath(path_dir_or_prefix)
    if not text:
        raise CheckpointError("checkpoint path is empty: give a directory or a file prefix")
    p = Path(text)
    if p.is_dir() or text.endswith(("/", os.sep)):
        prefix = p / DEFAULT_NAME
    elif p.suffix in (".safetensors", ".json"):
        prefix = p.with_suffix("")
    else:
        prefix = p
    name = prefix.name
    return CheckpointPaths(
        prefix.with_name(name + ".safetensors"),
        prefix.with_name(name + ".json"),
        prefix.with_name(name + ".prev.safetensors"),
    )


def checkpoint_exists(path_dir_or_prefix: str | os.PathLike[str]) -> bool:
    """True when the checkpoint (or the previous one it falls back to) exists."""
    paths = checkpoint_paths(path_dir_or_prefix)
    return paths.tensors.is_file() or paths.previous.is_file()


def _to_numpy(name: str, value: Any) -> np.ndarray:
    if type(value).__module__.startswith("torch"):
        import torch

        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"tensor '{name}': expected a numpy array or torch.Tensor, got {type(value).__name__}"
            )
        if value.dtype == torch.bfloat16:
            raise CheckpointError(
                f"tensor '{name}' is bfloat16, which numpy cannot hold: convert it with .float() before saving"
            )
        value = value.detach().cpu()
        if value.is_conj():
            value = value.resolve_conj()
        value = value.numpy()
    if not isinstance(value, np.ndarray):
        if isinstance(value, (np.generic, int, float, bool)):
            value = np.asarray(value)
        else:
            raise CheckpointError(
                f"tensor '{name}': expected a numpy array or torch.Tensor, got {type(value).__name__}"
            )
    if value.dtype.kind not in "biuf":
        raise CheckpointError(
            f"tensor '{name}' has dtype {value.dtype}, which safetensors "
            "cannot store: use a bool, integer or float array"
        )
    if not value.dtype.isnative:  # e.g. big-endian arrays read from IDX files
        value = value.astype(value.dtype.newbyteorder("="))
    # (not np.ascontiguousarray: it turns 0-d arrays into 1-d ones)
    return value if value.flags.c_contiguous else value.copy(order="C")


def _versions() -> dict[str, str]:
    from .. import __version__

    out = {"spikeforge": __version__, "numpy": np.__version__, "python": platform.python_version()}
    for mod in ("torch", "safetensors"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # pragma: no cover - both are dependencies
            out[mod] = "not installed"
    return out


def arrays_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    """The SHA-256 of named arrays: names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_checkpoint(
    path_dir_or_prefix: str | os.PathLike[str], tensors: Mapping[str, Any], meta: Mapping[str, Any] | None = None
) -> CheckpointPaths:
    """Save arrays and a JSON-serialisable ``meta`` dict as one file ``<prefix>.safetensors``.

    ``tensors`` maps names to numpy arrays or torch tensors (moved to CPU; bool/int/float dtypes).
    ``meta`` typically holds the config (``Params.to_dict()``) and the training position needed
    to resume. The new file is verified before it replaces the old one, which is kept as
    ``<prefix>.prev.safetensors`` (see the module docstring). Returns the paths.
    """
    from safetensors.numpy import save as st_save

    paths = checkpoint_paths(path_dir_or_prefix)
    if not isinstance(tensors, Mapping):
        raise CheckpointError(f"tensors must be a dict of name -> array, got {type(tensors).__name__}")
    arrays: dict[str, np.ndarray] = {}
    for name, value in tensors.items():
        if not isinstance(name, str) or not name:
            raise CheckpointError(f"tensor names must be non-empty strings, got {name!r}")
        arrays[name] = _to_numpy(name, value)
    record = {
        "meta": dict(meta or {}),
        "checkpoint": {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "versions": _versions(),
            "tensors": {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in arrays.items()},
            "arrays_sha256": arrays_sha256(arrays),
        },
    }
    text = to_json_text(record)  # fails on bad meta before touching any file
    data = st_save(arrays, metadata={"format": FORMAT_NAME, _HEADER_KEY: text})
    with atomic_writer(paths.tensors, "wb") as fh:
        fh.write(data)
        fh.flush()
        _read_v2(Path(fh.name))  # verify what is on disk before it replaces anything
        _keep_previous(paths)
    paths.meta.unlink(missing_ok=True)  # a format-1 sidecar is superseded by the new file
    return paths


def _keep_previous(paths: CheckpointPaths) -> None:
    """Make the current checkpoint (if sound) the previous one, without copying its bytes."""
    if not paths.tensors.is_file():
        return
    try:
        arrays, record = _load_any(paths.tensors, paths.meta, verify=True)
    except CheckpointError:
        return  # never replace a good previous checkpoint by a bad current one
    tmp = paths.previous.with_name(f".{paths.previous.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    if record["checkpoint"].get("format_version", 1) < 2:  # format 1: keep it as one file
        from safetensors.numpy import save as st_save

        record["checkpoint"].update(format_version=FORMAT_VERSION, arrays_sha256=arrays_sha256(arrays))
        tmp.write_bytes(st_save(arrays, metadata={"format": FORMAT_NAME, _HEADER_KEY: to_json_text(record)}))
    else:
        try:
            os.link(paths.tensors, tmp)
        except OSError:  # file systems without hard links
            import shutil

            shutil.copyfile(paths.tensors, tmp)
    os.replace(tmp, paths.previous)


def _header(path: Path) -> dict[str, str]:
    """The safetensors header's ``__metadata__`` of ``path`` (without reading the arrays)."""
    try:
        with path.open("rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            if not 0 < n < 100_000_000:
                raise ValueError(f"header length {n}")
            header = json.loads(fh.read(n))
        meta = header.get("__metadata__") or {}
        return meta if isinstance(meta, dict) else {}
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(
            f"checkpoint {path} is corrupt ({err}). Use an earlier checkpoint or train again"
        ) from None


def _record_from_text(text: str, where: Path) -> dict[str, Any]:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"checkpoint metadata in {where} is corrupt (not valid JSON: {err})") from None
    if (
        not isinstance(record, dict)
        or not isinstance(record.get("checkpoint"), dict)
        or record["checkpoint"].get("format") != FORMAT_NAME
    ):
        raise CheckpointError(
            f"{where} is not a spikeforge checkpoint file (no 'checkpoint.format' = '{FORMAT_NAME}'). Check the path"
        )
    version = record["checkpoint"].get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{where} has checkpoint format version {version!r}; this spikeforge reads versions up to "
            f"{FORMAT_VERSION}. Upgrade spikeforge"
        )
    return record


def _st_load(data: bytes, path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load as st_load

    try:
        return dict(st_load(data))
    except Exception as err:  # safetensors raises its own SafetensorError
        raise CheckpointError(
            f"checkpoint arrays file {path} is corrupt ({err}). Use an earlier checkpoint or train again"
        ) from None


def _read_v2(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    header = _header(path)
    if _HEADER_KEY not in header:
        raise CheckpointError(f"{path} holds no spikeforge metadata")
    record = _record_from_text(header[_HEADER_KEY], path)
    arrays = _st_load(path.read_bytes(), path)
    want = record["checkpoint"].get("arrays_sha256")
    if want and arrays_sha256(arrays) != want:
        raise CheckpointError(f"checkpoint {path} is corrupt (the arrays' SHA-256 differs from the one it records)")
    return arrays, record


def _read_v1(tensors: Path, meta: Path, verify: bool) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    if not meta.is_file():
        raise CheckpointError(
            f"{tensors} is a format-1 checkpoint whose metadata {meta} does not exist. "
            "Restore it (copy both files together), or use another checkpoint"
        )
    try:
        text = meta.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise CheckpointError(f"checkpoint metadata {meta} is corrupt ({err})") from None
    record = _record_from_text(text, meta)
    data = tensors.read_bytes()
    info = record["checkpoint"]
    if verify and info.get("tensors_sha256") and hashlib.sha256(data).hexdigest() != info["tensors_sha256"]:
        raise CheckpointError(
            f"checkpoint arrays file {tensors} does not match its metadata {meta} "
            "(SHA-256 differs): the file is corrupt or the two files come from different saves. "
            "Use an earlier checkpoint, or pass verify=False to load it anyway"
        )
    return _st_load(data, tensors), record


def _load_any(tensors: Path, meta: Path, verify: bool) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    if not tensors.is_file():
        raise CheckpointError(f"checkpoint {tensors} does not exist")
    if _HEADER_KEY in _header(tensors):
        return _read_v2(tensors)
    return _read_v1(tensors, meta, verify)


def _load_record(
    path_dir_or_prefix: str | os.PathLike[str], verify: bool = True
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    paths = checkpoint_paths(path_dir_or_prefix)
    if not paths.tensors.is_file() and not paths.previous.is_file():
        hint = f" (only its format-1 metadata {paths.meta.name} is there)" if paths.meta.is_file() else ""
        raise CheckpointError(
            f"no checkpoint at {paths.tensors.with_suffix('')} (expected {paths.tensors.name} in "
            f"{paths.tensors.parent}){hint}. Check the path, or train first to create it"
        )
    try:
        return _load_any(paths.tensors, paths.meta, verify)
    except CheckpointError as err:
        if not paths.previous.is_file():
            raise
        arrays, record = _load_any(paths.previous, paths.meta, verify=True)
        warnings.warn(
            CheckpointFallbackWarning(f"{err}; loaded the previous checkpoint {paths.previous} instead"), stacklevel=3
        )
        return arrays, record


def read_checkpoint_info(path_dir_or_prefix: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``checkpoint`` record of a checkpoint (versions, creation time, tensor shapes)."""
    return _load_record(path_dir_or_prefix)[1]["checkpoint"]


def load_checkpoint(
    path_dir_or_prefix: str | os.PathLike[str], verify: bool = True
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load a checkpoint saved by :func:`save_checkpoint`: ``(arrays, meta)``.

    ``arrays`` are numpy arrays (convert with ``torch.from_numpy``); ``meta`` is the dict that was
    saved (versions and timestamp are in :func:`read_checkpoint_info`). No pickle is involved. The
    checksum is always verified for the current format (``verify`` applies to format 1); a missing
    or corrupt checkpoint falls back to the previous one with a :class:`CheckpointFallbackWarning`,
    and raises :class:`CheckpointError` saying what to do when there is none.
    """
    arrays, record = _load_record(path_dir_or_prefix, verify)
    meta = record.get("meta")
    return arrays, dict(meta) if isinstance(meta, dict) else {}


def check_shapes(
    arrays: Mapping[str, np.ndarray],
    expected: Mapping[str, tuple[int, ...]],
    source: str | os.PathLike[str] = "checkpoint",
) -> None:
    """Raise :class:`CheckpointError` unless every name in ``expected`` is present with that shape.

    The message names the array, both shapes and the fix, e.g. loading 400-neuron weights into a
    1600-neuron network.
    """
    for name, shape in expected.items():
        if name not in arrays:
            raise CheckpointError(
                f"{os.fspath(source)} has no array '{name}' (it has: "
                f"{', '.join(sorted(arrays)) or 'none'}). Was it saved by "
                "another model?"
            )
        got = tuple(np.shape(arrays[name]))
        if got != tuple(shape):
            raise CheckpointError(
                f"{os.fspath(source)}: array '{name}' has shape {got} but this network needs "
                f"{tuple(shape)}. Load it with the config it was trained with (saved in its .json), "
                "or start a new run for the new size"
            )
