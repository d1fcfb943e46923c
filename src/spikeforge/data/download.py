"""Checking the four MNIST files (md5 of the decompressed content, shapes) and downloading them
from several mirrors (``spikeforge data download`` / ``check``)."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .mnist import (
    MNIST_MD5,
    DataError,
    _all_names,
    _fix_for,
    _is_gzip,
    _md5_decompressed,
    _open_decompressed,
    _parse_header,
    default_data_dir,
    file_md5,
    find_mnist_file,
)

#: Base URLs tried in order by :func:`download_mnist`; each serves ``<base>/<name>.gz``.
DEFAULT_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


@dataclass(frozen=True)
class FileCheck:
    """Result of checking one MNIST file (see :func:`check_mnist`)."""

    name: str
    path: Path | None
    md5: str | None
    ok: bool
    shape: tuple[int, ...] | None
    problem: str | None = None


def _check_one(directory: Path, name: str) -> FileCheck:
    path = find_mnist_file(directory, name)
    if path is None:
        return FileCheck(name, None, None, False, None, "missing")
    try:
        md5 = file_md5(path)
        with _open_decompressed(path) as fh:
            _, shape = _parse_header(fh, path)
    except DataError as err:
        return FileCheck(name, path, None, False, None, str(err))
    ok = md5 == MNIST_MD5[name]
    problem = None if ok else (f"md5 {md5} differs from the official {MNIST_MD5[name]}; {_fix_for(path)}")
    return FileCheck(name, path, md5, ok, shape, problem)


def check_mnist(data_dir: str | os.PathLike[str] | None = None) -> list[FileCheck]:
    """Check the four MNIST files in a directory: present, readable, official MD5."""
    directory = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    return [_check_one(directory, name) for name in _all_names()]


def _join_url(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name + ".gz"


def download_mnist(
    dest_dir: str | os.PathLike[str] | None = None,
    mirrors: Sequence[str] | None = None,
    *,
    timeout_s: float = 60.0,
    log: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Download the four MNIST files (gzipped) into ``dest_dir`` and verify them.

    ``dest_dir`` defaults to :func:`default_data_dir`. For each file, mirrors (base URLs, default
    :data:`DEFAULT_MIRRORS`; ``file://`` works too) are tried in order until one gives a file whose
    decompressed MD5 is the official one. Files already present (raw or gzipped) with the right MD5
    are skipped; a present but wrong file is moved aside to ``<name>.bad`` once a good copy has
    arrived. Each download goes to a temporary file that is renamed only after it verifies.
    Returns ``{name: path}`` of the four files; raises :class:`DataError` listing what every mirror
    did when no mirror works for a file.
    """
    from ..io.atomic import atomic_writer

    say = log or (lambda _msg: None)
    directory = Path(dest_dir).expanduser() if dest_dir is not None else default_data_dir()
    mirrors = list(DEFAULT_MIRRORS if mirrors is None else mirrors)
    if not mirrors:
        raise DataError("no mirrors given: pass at least one base URL (--mirror URL)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create the data directory {directory} ({err}); choose another with --dir") from None
    result: dict[str, Path] = {}
    for name in _all_names():
        existing = find_mnist_file(directory, name)
        bad_existing: Path | None = None
        if existing is not None:
            try:
                good = file_md5(existing) == MNIST_MD5[name]
            except DataError:
                good = False
            if good:
                say(f"{name}: already present and valid ({existing})")
                result[name] = existing
                continue
            bad_existing = existing
            say(f"{name}: {existing} is corrupt (wrong md5); downloading a fresh copy")
        target = directory / f"{name}.gz"
        failures: list[str] = []
        for base in mirrors:
            url = _join_url(base, name)
            say(f"{name}: downloading {url}")
            try:
                with atomic_writer(target, "wb") as fh:
                    req = urllib.request.Request(url, headers={"User-Agent": "spikeforge"})
                    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                        for chunk in iter(lambda: resp.read(1 << 20), b""):
                            fh.write(chunk)
                    fh.flush()
                    if not _is_gzip(Path(fh.name)):
                        with open(fh.name, "rb") as check:
                            start = check.read(40)
                        raise _MirrorFailure(f"not a gzip file (starts with {start!r})")
                    try:
                        md5 = _md5_decompressed(Path(fh.name))
                    except (OSError, EOFError, zlib.error) as err:
                        raise _MirrorFailure(f"not a valid gzip file ({err})") from None
                    if md5 != MNIST_MD5[name]:
                        raise _MirrorFailure(f"md5 {md5}, expected {MNIST_MD5[name]}")
            except _MirrorFailure as err:
                failures.append(f"{url}: {err}")
            except urllib.error.HTTPError as err:
                failures.append(f"{url}: HTTP {err.code} {err.reason}")
            except (urllib.error.URLError, OSError, ValueError) as err:
                failures.append(f"{url}: {getattr(err, 'reason', None) or err}")
            else:
                say(f"{name}: ok")
                result[name] = target
                if bad_existing is not None and bad_existing != target and bad_existing.exists():
                    bad_existing.replace(bad_existing.with_name(bad_existing.name + ".bad"))
                break
            say(f"{name}: failed ({failures[-1].split(': ', 1)[1]})")
        else:
            tried = "\n".join(f"  {f}" for f in failures)
            raise DataError(
                f"could not download {name}.gz from any mirror:\n{tried}\n"
                f"Check the network or give a working mirror with --mirror URL, or copy the file "
                f"by hand into {directory} (its decompressed md5 must be {MNIST_MD5[name]})."
            )
    return result


class _MirrorFailure(Exception):
    pass
