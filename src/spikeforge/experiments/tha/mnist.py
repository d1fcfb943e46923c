"""``spikeforge tha mnist``: the snn-tha MNIST network trained with surrogate gradients and
threshold annealing, trial by trial, checkpointed and resumable (see :mod:`spikeforge.experiments.tha`)."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch

from ...models.tha_nets import THAMnistNet
from ..scaffold import RunDir
from .config import MNIST_SPEC, MnistConfig
from .distributed import SINGLE, SingleProcess
from .training import THATask, evaluate, holdout, load_tensors, train_in

__all__ = ["MNIST_TASK", "evaluate", "load_tensors", "train_mnist", "train_mnist_in", "split_images"]


def _images_to_tensor(images: np.ndarray, normalize: bool) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(images, dtype=np.float32) / 255.0).unsqueeze(1)
    if normalize:
        x = (x - 0.1307) / 0.3081
    return x


def split_images(d, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]):
    """Train / validation / test splits of uint8 images ``[n, rows, cols]`` and their labels, with
    the data section ``d`` (``val_size``, ``normalize``): the validation split is the last
    ``val_size`` images of a fixed seeded permutation of the training set (the same in every trial)."""
    (tr_x, tr_y), (te_x, te_y) = train, test
    train_idx, val_idx = holdout(tr_x.shape[0], d.val_size, "training images")
    X = _images_to_tensor(tr_x, d.normalize)
    Y = torch.from_numpy(np.asarray(tr_y, dtype=np.int64))
    return (
        (X[train_idx], Y[train_idx]),
        (X[val_idx], Y[val_idx]),
        (_images_to_tensor(te_x, d.normalize), torch.from_numpy(np.asarray(te_y, dtype=np.int64))),
    )


def _load_mnist_splits(cfg: MnistConfig):
    from ...data import load_dataset

    d = cfg.data
    return split_images(
        d, load_dataset(d.data_dir, "train", d.train_limit), load_dataset(d.data_dir, "test", d.test_limit)
    )


def _describe_mnist(cfg: MnistConfig) -> str:
    return f"MNIST ({cfg.data.data_dir or os.environ.get('SPIKEFORGE_DATA') or 'embedded subset'})"


MNIST_TASK = THATask(MNIST_SPEC, lambda cfg: THAMnistNet(cfg.model), _load_mnist_splits, _describe_mnist)


def train_mnist(
    cfg: MnistConfig, out_dir: str | os.PathLike | None = None, resume: bool = True, log: Callable[[str], None] = print
) -> dict:
    """Run every trial of the MNIST experiment in the run directory ``out_dir`` (opened and locked
    here; ``resume=False`` starts it again); returns (and writes) ``results.json``."""
    rd = RunDir(out_dir or MNIST_SPEC.default_out, MNIST_SPEC)
    if resume:
        rd.saved()
    with rd.open(cfg, fresh=not resume):
        return train_mnist_in(rd, log)


def train_mnist_in(rd: RunDir, log: Callable[[str], None] | None = None, dp: SingleProcess = SINGLE) -> dict:
    """The MNIST experiment in an opened run directory (``rd.cfg`` is its config); ``dp``: the
    data-parallel hooks of this rank (see :mod:`.distributed`)."""
    assert isinstance(rd.cfg, MnistConfig)
    return train_in(MNIST_TASK, rd, log, dp)
