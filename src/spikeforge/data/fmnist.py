"""Fashion-MNIST (Xiao et al. 2017) through the MNIST IDX reader, and where every non-MNIST data
set is looked for.

Fashion-MNIST ships the same four files as MNIST, with the same names and formats (raw or
gzipped): ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte`` (60,000 + 10,000 uint8 images of 28 x 28, labels 0-9).

:func:`dataset_dir`: a data set ``NAME`` (``fmnist``, ``dvs_gesture``, ``shd``) is read from
``data_dir`` when given, else from ``$SPIKEFORGE_DATA/NAME``, else from
``$XDG_CACHE_HOME/spikeforge/NAME`` (``~/.cache/spikeforge/NAME``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .mnist import DOWNLOAD_HINT, ENV_VAR, MNIST_FILES, DataError, load_mnist

FMNIST_FILES = MNIST_FILES
IMAGE_SHAPE = (28, 28)


def dataset_dir(data_dir: str | os.PathLike[str] | None, name: str) -> tuple[Path, str]:
    """The directory of the data set ``name`` and a phrase saying where that choice came from."""
    if data_dir is not None:
        return Path(data_dir).expanduser(), "given as data_dir / --data-dir"
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser() / name, f"${ENV_VAR}/{name}"
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "spikeforge" / name, f"the default folder (set --data-dir or ${ENV_VAR})"


def expected_fmnist_files() -> str:
    return "\n".join(f"  {n}.gz (or {n})" for pair in FMNIST_FILES.values() for n in pair)


def load_fmnist(
    data_dir: str | os.PathLike[str] | None = None, split: str = "train", limit: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST ``split`` as ``(images uint8 [n, 28, 28], labels uint8 [n])``; ``limit`` reads
    only the first examples. A missing folder or file, or one of the wrong shape, is a
    :class:`DataError` naming the expected files."""
    if split not in FMNIST_FILES:
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    directory, source = dataset_dir(data_dir, "fmnist")
    if directory.exists() and not directory.is_dir():
        raise DataError(f"Fashion-MNIST directory {directory} ({source}) is a file, not a directory")
    missing = [n for n in FMNIST_FILES[split] if not any((directory / f).is_file() for f in (n, f"{n}.gz"))]
    if missing:
        what = "does not exist" if not directory.exists() else f"lacks {', '.join(missing)}"
        raise DataError(
            f"Fashion-MNIST directory {directory} ({source}) {what}. It must hold the four Fashion-MNIST files "
            f"(as the data set ships them):\n{expected_fmnist_files()}\n"
            f"Put them there, or point --data-dir (or ${ENV_VAR}/fmnist) at a directory that has them."
        )
    try:
        images, labels = load_mnist(directory, split, limit)
    except DataError as err:
        fix = "replace it with the Fashion-MNIST file of that name"
        raise DataError(str(err).replace(DOWNLOAD_HINT.format(dir=directory), fix)) from None
    if images.shape[1:] != IMAGE_SHAPE:
        raise DataError(
            f"{directory}: Fashion-MNIST images must be 28 x 28, found {images.shape[1]} x {images.shape[2]} "
            f"(shape {images.shape}); replace the images file with the Fashion-MNIST one"
        )
    return images, labels
