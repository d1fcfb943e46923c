"""Atomic file writes: a reader (or a run killed at any moment) sees the old file or the new one,
never half of one. Every file spikeforge writes goes through :func:`atomic_writer`: a temporary
file ``.<name>.<random>.tmp`` in the same directory, flushed and fsynced, then renamed over the
target with :func:`os.replace`. :func:`remove_stale_temporaries` deletes the temporaries a killed
process left behind (call it only while no other process writes to the directory, e.g. under a
run directory's lock).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..config import ConfigError

TMP_GLOB = ".*.tmp"


def remove_stale_temporaries(directory: str | os.PathLike[str]) -> list[Path]:
    """Delete the ``.<name>.<random>.tmp`` files in ``directory`` (not recursive); returns them."""
    removed = []
    for p in Path(directory).glob(TMP_GLOB):
        if p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


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
