"""MNIST: IDX reader, loaders and a small embedded subset (checking and the verified downloader
are in :mod:`spikeforge.data.download`).

Where the data comes from
-------------------------
:func:`load_mnist` reads the four standard files (gzipped or not) from a directory chosen as:

1. ``data_dir`` if given (``"embedded"`` selects the subset shipped in the package);
2. else the environment variable ``SPIKEFORGE_DATA``;
3. else the user cache directory ``$XDG_CACHE_HOME/spikeforge/mnist`` (``~/.cache/spikeforge/mnist``
   when ``XDG_CACHE_HOME`` is unset), which is also where ``spikeforge data download`` writes by
   default.

In each directory the files may sit directly or in a ``mnist/`` sub-directory, so both
``--data-dir shared/data`` and ``--data-dir shared/data/mnist`` work.

:func:`load_dataset` is what experiments call: it differs from :func:`load_mnist` only when neither
``data_dir`` nor ``SPIKEFORGE_DATA`` is given, in which case it uses the embedded subset (the first
3,000 training and 1,000 test images), so that every command runs out of the box, offline. Asking
it for more examples than the subset holds is an error that says how to point at the full data.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import zlib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np

from ..config import ConfigError


class DataError(ConfigError):
    """A data file or directory is missing, corrupt or too small; the message says how to fix it."""


DOWNLOAD_HINT = "re-download it with `spikeforge data download --dir {dir}`"
ENV_VAR = "SPIKEFORGE_DATA"
EMBEDDED = "embedded"
SPLITS = ("train", "test")

#: The four files per split: (images, labels), decompressed names.
MNIST_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: MD5 of each *decompressed* file (gzip copies differ between mirrors; their content does not).
MNIST_MD5: dict[str, str] = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

#: Number of examples per split in the embedded subset.
EMBEDDED_SIZES = {"train": 3000, "test": 1000}
_EMBEDDED_FILE = "mnist_subset.npz"

# IDX type codes -> big-endian numpy dtypes
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


def _all_names() -> list[str]:
    return [n for pair in MNIST_FILES.values() for n in pair]


def _split_files_text() -> str:
    return ", ".join(_all_names())


# --------------------------------------------------------------------------------------------
# IDX
# --------------------------------------------------------------------------------------------


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def _open_decompressed(path: Path):
    """A binary file object over the decompressed content (gzip detected by its magic bytes)."""
    return gzip.open(path, "rb") if _is_gzip(path) else path.open("rb")


def _fix_for(path: Path) -> str:
    return DOWNLOAD_HINT.format(dir=path.parent)


def _read_exact(fh, n: int, path: Path, what: str) -> bytes:
    """Read ``n`` bytes, turning gzip/zlib errors and short reads into DataError."""
    try:
        data = fh.read(n)
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
        raise DataError(
            f"{path}: corrupted or truncated gzip data while reading {what} ({err}); {_fix_for(path)}"
        ) from None
    if len(data) < n:
        raise DataError(f"{path}: file is truncated: expected {n} bytes of {what}, found {len(data)}; {_fix_for(path)}")
    return data


def _parse_header(fh, path: Path) -> tuple[np.dtype, tuple[int, ...]]:
    magic = _read_exact(fh, 4, path, "IDX header")
    if magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_DTYPES:
        raise DataError(
            f"{path}: not an IDX file (magic bytes {magic.hex()}; expected 0000 followed by a "
            f"type code among {', '.join(f'{c:02x}' for c in _IDX_DTYPES)} and the number of "
            f"dimensions); {_fix_for(path)}"
        )
    ndim = magic[3]
    dims = np.frombuffer(_read_exact(fh, 4 * ndim, path, "IDX dimensions"), dtype=">u4")
    return np.dtype(_IDX_DTYPES[magic[2]]), tuple(int(d) for d in dims)


def _describe(dtype: np.dtype, dims: tuple[int, ...]) -> str:
    kind = "pixels" if len(dims) >= 2 else "labels" if len(dims) == 1 else "data"
    return f"{kind} ({' x '.join(map(str, dims)) or 'scalar'} {dtype.newbyteorder('=').name})"


def read_idx(path: str | os.PathLike[str], limit: int | None = None) -> np.ndarray:
    """Read an IDX file (raw or gzipped, detected from its content) into a numpy array.

    The header is: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, then each dimension as a big-endian
    uint32; the payload follows in C order, big-endian. The array is returned in native byte
    order.

    With ``limit``, only the first ``limit`` items along the first axis are read (fast for a few
    examples; the rest of the file is then not checked). Without it, the payload must have exactly
    the size the header announces. Every problem raises :class:`DataError` naming the file, what
    is wrong and how to fix it.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file does not exist; {_fix_for(path)}")
    try:
        fh = _open_decompressed(path)
    except OSError as err:
        raise DataError(f"{path}: cannot open ({err})") from None
    with fh:
        dtype, dims = _parse_header(fh, path)
        what = _describe(dtype, dims)
        if limit is not None:
            if not dims:
                raise DataError(f"{path}: limit={limit} given but the file holds a scalar")
            if limit < 0:
                raise DataError(f"limit must be >= 0, got {limit}")
            dims = (min(limit, dims[0]),) + dims[1:]
        count = int(np.prod(dims, dtype=np.int64))
        nbytes = count * dtype.itemsize
        payload = _read_exact(fh, nbytes, path, what)
        if limit is None:
            extra = _count_rest(fh, path, what)
            if extra:
                raise DataError(
                    f"{path}: file is too long: expected {nbytes} bytes of {what}, found "
                    f"{nbytes + extra}; {_fix_for(path)}"
                )
    return np.frombuffer(payload, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def _count_rest(fh, path: Path, what: str) -> int:
    """Bytes left in ``fh`` (reading to the end also makes gzip check its CRC)."""
    total = 0
    while True:
        try:
            chunk = fh.read(1 << 20)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"{path}: corrupted gzip data after the {what} ({err}); {_fix_for(path)}") from None
        if not chunk:
            return total
        total += len(chunk)


def write_idx(path: str | os.PathLike[str], array: np.ndarray, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file (gzipped if ``compress``, default: when the name ends .gz).

    Used by tests and to export subsets; written atomically."""
    from ..io.atomic import atomic_write_bytes

    path = Path(path)
    array = np.asarray(array)
    codes = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_DTYPES.items()}
    key = array.dtype.newbyteorder("=")
    if key not in codes:
        raise DataError(f"cannot write dtype {array.dtype} as IDX (use uint8, int8, int16, int32, float32 or float64)")
    header = bytes([0, 0, codes[key], array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    raw = header + np.ascontiguousarray(array, dtype=_IDX_DTYPES[codes[key]]).tobytes()
    if compress is None:
        compress = path.name.endswith(".gz")
    return atomic_write_bytes(path, gzip.compress(raw, mtime=0) if compress else raw)


def _md5_decompressed(path: Path) -> str:
    digest = hashlib.md5()
    with _open_decompressed(path) as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_md5(path: str | os.PathLike[str]) -> str:
    """MD5 of a file's decompressed content (the file itself when it is not gzipped)."""
    path = Path(path)
    try:
        return _md5_decompressed(path)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: corrupted or truncated gzip data ({err}); {_fix_for(path)}") from None


# --------------------------------------------------------------------------------------------
# locating and loading
# --------------------------------------------------------------------------------------------


def default_data_dir() -> Path:
    """``$SPIKEFORGE_DATA`` if set, else ``$XDG_CACHE_HOME/spikeforge/mnist`` (or ``~/.cache/...``)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "spikeforge" / "mnist"


def find_mnist_file(directory: str | os.PathLike[str], name: str) -> Path | None:
    """The path of ``name`` or ``name.gz`` in ``directory`` or ``directory/mnist`` (raw first)."""
    directory = Path(directory)
    for d in (directory, directory / "mnist"):
        for candidate in (d / name, d / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _missing_files_error(directory: Path, missing: Sequence[str], source: str) -> DataError:
    names = "\n".join(f"  {n} (or {n}.gz)" for n in _all_names())
    what = "does not exist" if not directory.exists() else f"lacks {', '.join(missing)}"
    return DataError(
        f"MNIST directory {directory} ({source}) {what}. It must hold the four MNIST files:\n"
        f"{names}\n"
        f"Download them with `spikeforge data download --dir {directory}`, or point "
        f"--data-dir / {ENV_VAR} at a directory that has them."
    )


def _check_limit(limit: int | None, available: int, split: str, where: str, fix: str) -> int:
    if limit is None:
        return available
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise DataError(f"limit must be a positive integer or None, got {limit!r}")
    if limit > available:
        raise DataError(f"asked for {limit} {split} examples but {where} has only {available}; {fix}")
    return int(limit)


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DataError(f"split must be 'train' or 'test', got {split!r}")


def _validate_pair(images: np.ndarray, labels: np.ndarray, img_path, lbl_path) -> None:
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(
            f"{img_path}: expected uint8 images of shape [n, rows, cols], found "
            f"{images.dtype} {images.shape}; is this a labels file? "
            f"{_fix_for(Path(img_path))}"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(
            f"{lbl_path}: expected uint8 labels of shape [n], found {labels.dtype} "
            f"{labels.shape}; is this an images file? {_fix_for(Path(lbl_path))}"
        )
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{img_path} has {images.shape[0]} images but {lbl_path} has "
            f"{labels.shape[0]} labels; the two files come from different sets. "
            f"{_fix_for(Path(img_path))}"
        )
    if labels.size and labels.max() > 9:
        raise DataError(f"{lbl_path}: label {int(labels.max())} is outside 0-9; {_fix_for(Path(lbl_path))}")


def load_mnist(
    data_dir: str | os.PathLike[str] | None = None, split: str = "train", limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST ``split`` ("train" or "test") as ``(images uint8 [n, 28, 28], labels uint8 [n])``.

    ``data_dir`` is resolved as described in the module docstring (``"embedded"`` selects the
    packaged subset). ``limit`` keeps the first ``limit`` examples and reads only those.
    """
    _check_split(split)
    if data_dir is not None and os.fspath(data_dir) == EMBEDDED:
        return load_embedded(split, limit)
    if data_dir is None:
        directory = default_data_dir()
        source = f"from ${ENV_VAR}" if os.environ.get(ENV_VAR) else "the default download directory"
    else:
        directory = Path(data_dir).expanduser()
        source = "given as data_dir / --data-dir"
    if directory.exists() and not directory.is_dir():
        raise DataError(
            f"MNIST directory {directory} ({source}) is a file, not a directory: give the directory that holds "
            "the four MNIST files (`spikeforge data download --dir DIR` makes one)"
        )
    img_name, lbl_name = MNIST_FILES[split]
    img_path = find_mnist_file(directory, img_name)
    lbl_path = find_mnist_file(directory, lbl_name)
    missing = [n for n, p in ((img_name, img_path), (lbl_name, lbl_path)) if p is None]
    if missing:
        raise _missing_files_error(directory, missing, source)
    # the headers' counts, before reading any payload: the two files must be one set (test labels
    # given as training labels differ in count even when only the first ``limit`` are read)
    counts = []
    for path in (img_path, lbl_path):
        with _open_decompressed(path) as fh:
            _, dims = _parse_header(fh, path)
        counts.append(dims[0] if dims else 0)
    if counts[0] != counts[1]:
        raise DataError(
            f"{img_path} has {counts[0]} images but {lbl_path} has {counts[1]} labels; the two files come from "
            f"different sets (e.g. test labels beside training images). {_fix_for(Path(img_path))}"
        )
    if limit is not None:
        _check_limit(limit, counts[0], split, str(img_path), "lower the limit")
    images = read_idx(img_path, limit=limit)
    labels = read_idx(lbl_path, limit=limit)
    _validate_pair(images, labels, img_path, lbl_path)
    return images, labels


def _embedded_resource():
    return resources.files(__package__).joinpath("embedded", _EMBEDDED_FILE)


def load_embedded(split: str = "train", limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The MNIST subset shipped in the package: the first 3,000 training and first 1,000 test
    examples of the official files (made by ``scripts/make_embedded_mnist.py``)."""
    _check_split(split)
    res = _embedded_resource()
    try:
        with res.open("rb") as fh, np.load(io.BytesIO(fh.read()), allow_pickle=False) as z:
            images, labels = z[f"{split}_images"], z[f"{split}_labels"]
    except FileNotFoundError:
        raise DataError(
            f"the embedded MNIST subset ({res}) is missing from this installation; "
            "reinstall spikeforge, or pass --data-dir with the full MNIST "
            "(`spikeforge data download`)"
        ) from None
    n = _check_limit(
        limit,
        images.shape[0],
        split,
        "the embedded MNIST subset",
        f"pass --data-dir DIR (or set {ENV_VAR}) with the full MNIST, downloaded by "
        "`spikeforge data download --dir DIR`",
    )
    return images[:n], labels[:n]


def load_dataset(
    data_dir: str | os.PathLike[str] | None = None, split: str = "train", limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """What experiments call: :func:`load_mnist`, except that with neither ``data_dir`` nor
    ``$SPIKEFORGE_DATA`` it uses the embedded subset instead of the download directory."""
    if data_dir is None and not os.environ.get(ENV_VAR):
        return load_embedded(split, limit)
    return load_mnist(data_dir, split, limit)


def describe_source(data_dir: str | os.PathLike[str] | None = None) -> str:
    """A one-line description of where :func:`load_dataset` reads from (for logs and results)."""
    if data_dir is None and not os.environ.get(ENV_VAR):
        return "embedded MNIST subset (3000 train / 1000 test)"
    if data_dir is not None and os.fspath(data_dir) == EMBEDDED:
        return "embedded MNIST subset (3000 train / 1000 test)"
    return f"MNIST in {Path(data_dir).expanduser() if data_dir is not None else default_data_dir()}"
