"""Datasets: MNIST (IDX reader, loaders, an embedded subset, a verified downloader)."""

from .download import DEFAULT_MIRRORS, FileCheck, check_mnist, download_mnist
from .mnist import (
    EMBEDDED_SIZES,
    ENV_VAR,
    MNIST_FILES,
    MNIST_MD5,
    DataError,
    default_data_dir,
    describe_source,
    file_md5,
    find_mnist_file,
    load_dataset,
    load_embedded,
    load_mnist,
    read_idx,
    write_idx,
)

__all__ = [
    "DEFAULT_MIRRORS",
    "EMBEDDED_SIZES",
    "ENV_VAR",
    "MNIST_FILES",
    "MNIST_MD5",
    "DataError",
    "FileCheck",
    "check_mnist",
    "default_data_dir",
    "describe_source",
    "download_mnist",
    "file_md5",
    "find_mnist_file",
    "load_dataset",
    "load_embedded",
    "load_mnist",
    "read_idx",
    "write_idx",
]
