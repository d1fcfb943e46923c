"""Checkpoints (safetensors + JSON) and atomic file writes.

A checkpoint named ``<prefix>`` is two files side by side:

``<prefix>.safetensors``
    the arrays, in the safetensors format (no pickle anywhere, on save or on load);
``<prefix>.json``
    ``{"meta": <your meta dict>, "checkpoint": {...}}`` where ``checkpoint`` records the format
    version, the creation time (UTC, ISO 8601), the versions of spikeforge, torch, numpy,
    safetensors and Python, the name/dtype/shape of every array, and the SHA-256 of the
    ``.safetensors`` file.

Every file is written atomically: to a temporary file in the same directory, flushed and fsynced,
then renamed over the target with :func:`os.replace`. A run killed at any moment therefore leaves
either the old file or the new one, never a half-written one. The two files of a checkpoint are
renamed one after the other (arrays first); the SHA-256 in the JSON lets :func:`load_checkpoint`
detect the one-in-a-million case of a kill between the two renames, and say so.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np

from ..config import ConfigError

FORMAT_NAME = "spikeforge-checkpoint"
FORMAT_VERSION = 1
DEFAULT_NAME = "checkpoint"


class CheckpointError(ConfigError):
    """A checkpoint is missing, corrupt, or does not match what the caller expects."""


# --------------------------------------------------------------------------------------------
# atomic writes
# --------------------------------------------------------------------------------------------


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable on POSIX file systems; silently skipped where unsupported."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str], mode: str = "wb", encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on a clean exit, fsync it and rename it to ``path``.

    If the body raises, the temporary file is deleted and ``path`` is left untouched. The open
    file's ``name`` attribute is the temporary path, so the body may re-read what it wrote (for
    example to verify a checksum) before the rename happens. Parent directories are created.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_writer mode must be 'wb' or 'w', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: it creates mode 0600 files, and the renamed result should get the
    # usual permissions (0666 minus the umask), like any file the user writes.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover
        raise OSError(f"could not create a temporary file next to {path}")
    os.close(fd)
    try:  # reopened by name so that fh.name is the temporary path
        if mode == "w":
            fh: IO[Any] = open(tmp, "w", encoding=encoding or "utf-8", newline="\n")
        else:
            fh = open(tmp, "wb")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_writer(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` line endings) to ``path`` atomically; returns the path."""
    with atomic_writer(path, "w") as fh:
        fh.write(text)
    return Path(path)


def _json_default(obj: Any) -> Any:
    """Turn the non-JSON values that commonly end up in results into JSON ones."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if isinstance(obj, (_dt.datetime, _dt.date)):
        return obj.isoformat()
    to_dict = getattr(obj, "to_dict", None) or getattr(obj, "model_dump", None)
    if callable(to_dict):  # spikeforge Params and other pydantic models
        return to_dict()
    if type(obj).__module__.startswith("torch") and hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"value of type {type(obj).__name__} is not JSON serialisable")


def to_json_text(obj: Any) -> str:
    """``obj`` as indented JSON text (numpy scalars/arrays, paths, pydantic models allowed).

    Raises :class:`ConfigError` naming the offending value's type if something cannot be stored,
    and for NaN/infinity, which JSON cannot represent (store them as strings or None)."""
    try:
        return json.dumps(obj, indent=2, default=_json_default, allow_nan=False) + "\n"
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"cannot write as JSON: {err}. Convert the value to a number, string, list or dict "
            "(NaN and infinity must become strings or None)"
        ) from None


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically; returns the path.

    numpy scalars and arrays, paths, sets, datetimes and pydantic models (``Params``) are
    converted; anything else that JSON cannot hold raises :class:`ConfigError`."""
    return atomic_write_text(path, to_json_text(obj))


# --------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------


class CheckpointPaths(NamedTuple):
    tensors: Path
    meta: Path


def checkpoint_paths(path_dir_or_prefix: str | os.PathLike[str]) -> CheckpointPaths:
    """Resolve where a checkpoint lives.

    - an existing directory ``d`` (or a path ending with a separator) -> ``d/checkpoint.*``;
    - ``x.safetensors`` or ``x.json`` -> ``x.*``;
    - anything else is a prefix: ``runs/a/step100`` -> ``runs/a/step100.safetensors`` and
      ``runs/a/step100.json``.
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
    return CheckpointPaths(prefix.with_name(prefix.name + ".safetensors"), prefix.with_name(prefix.name + ".json"))


def checkpoint_exists(path_dir_or_prefix: str | os.PathLike[str]) -> bool:
    """True when both files of the checkpoint exist (use before resuming)."""
    paths = checkpoint_paths(path_dir_or_prefix)
    return paths.tensors.is_file() and paths.meta.is_file()


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


def save_checkpoint(
    path_dir_or_prefix: str | os.PathLike[str], tensors: Mapping[str, Any], meta: Mapping[str, Any] | None = None
) -> CheckpointPaths:
    """Save arrays and a JSON-serialisable ``meta`` dict as ``<prefix>.safetensors`` + ``.json``.

    ``tensors`` maps names to numpy arrays or torch tensors (moved to CPU; bool/int/float dtypes).
    ``meta`` typically holds the config (``Params.to_dict()``) and the training position needed
    to resume. Both files are written atomically (see the module docstring); parent directories
    are created. Returns the two paths.
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
    meta = dict(meta or {})
    data = st_save(arrays, metadata={"format": FORMAT_NAME})
    record = {
        "meta": meta,
        "checkpoint": {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "versions": _versions(),
            "tensors": {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in arrays.items()},
            "tensors_file": paths.tensors.name,
            "tensors_sha256": hashlib.sha256(data).hexdigest(),
        },
    }
    text = to_json_text(record)  # fail on bad meta before touching any file
    atomic_write_bytes(paths.tensors, data)
    atomic_write_text(paths.meta, text)
    return paths


def _read_record(paths: CheckpointPaths) -> dict[str, Any]:
    if not paths.meta.is_file():
        hint = (
            (
                f" (its arrays file {paths.tensors} exists: the run was probably killed while "
                "saving; use an earlier checkpoint)"
            )
            if paths.tensors.is_file()
            else ""
        )
        raise CheckpointError(
            f"checkpoint metadata {paths.meta} does not exist{hint}. "
            "Check the path, or train again to create the checkpoint"
        )
    try:
        record = json.loads(paths.meta.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(
            f"checkpoint metadata {paths.meta} is corrupt (not valid JSON: "
            f"{err}). Use an earlier checkpoint or train again"
        ) from None
    if (
        not isinstance(record, dict)
        or not isinstance(record.get("checkpoint"), dict)
        or record["checkpoint"].get("format") != FORMAT_NAME
    ):
        raise CheckpointError(
            f"{paths.meta} is not a spikeforge checkpoint file (no "
            f"'checkpoint.format' = '{FORMAT_NAME}'). Check the path"
        )
    version = record["checkpoint"].get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{paths.meta} has checkpoint format version {version!r}; this "
            f"spikeforge reads versions up to {FORMAT_VERSION}. Upgrade spikeforge"
        )
    return record


def read_checkpoint_info(path_dir_or_prefix: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``checkpoint`` record of a checkpoint's JSON (versions, creation time, tensor shapes)."""
    return _read_record(checkpoint_paths(path_dir_or_prefix))["checkpoint"]


def load_checkpoint(
    path_dir_or_prefix: str | os.PathLike[str], verify: bool = True
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load a checkpoint saved by :func:`save_checkpoint`: ``(arrays, meta)``.

    ``arrays`` are numpy arrays (convert with ``torch.from_numpy``); ``meta`` is the dict that was
    saved (versions and timestamp are in :func:`read_checkpoint_info`). No pickle is involved.
    With ``verify`` (default) the arrays file's SHA-256 must match the one in the JSON; a
    mismatch, a missing file or a corrupt file raises :class:`CheckpointError` saying what to do.
    """
    from safetensors.numpy import load as st_load

    paths = checkpoint_paths(path_dir_or_prefix)
    if not paths.tensors.is_file() and not paths.meta.is_file():
        raise CheckpointError(
            f"no checkpoint at {paths.tensors.with_suffix('')} (expected "
            f"{paths.tensors.name} and {paths.meta.name} in {paths.tensors.parent}). "
            "Check the path, or train first to create it"
        )
    record = _read_record(paths)
    if not paths.tensors.is_file():
        raise CheckpointError(
            f"checkpoint arrays file {paths.tensors} does not exist (its "
            f"metadata {paths.meta} does). Copy both files together, or use "
            "another checkpoint"
        )
    data = paths.tensors.read_bytes()
    info = record["checkpoint"]
    if verify and info.get("tensors_sha256") and hashlib.sha256(data).hexdigest() != info["tensors_sha256"]:
        raise CheckpointError(
            f"checkpoint arrays file {paths.tensors} does not match its metadata {paths.meta} "
            "(SHA-256 differs): the file is corrupt or the two files come from different saves. "
            "Use an earlier checkpoint, or pass verify=False to load it anyway"
        )
    try:
        arrays = st_load(data)
    except Exception as err:  # safetensors raises its own SafetensorError
        raise CheckpointError(
            f"checkpoint arrays file {paths.tensors} is corrupt ({err}). Use an earlier checkpoint or train again"
        ) from None
    meta = record.get("meta")
    return dict(arrays), dict(meta) if isinstance(meta, dict) else {}


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
