"""The ``tha`` classification experiments by spec name, and :func:`evaluate_checkpoint`, which
scores a checkpoint of any of them."""

from __future__ import annotations

import os
from typing import Any

import torch

from ...config import ConfigError
from .datasets import DVS_GESTURE_TASK, FMNIST_TASK, SHD_TASK
from .distributed import SINGLE, SingleProcess
from .mnist import MNIST_TASK
from .training import THATask, evaluate, load_tensors, train_in

TASKS: dict[str, THATask] = {t.spec.name: t for t in (MNIST_TASK, FMNIST_TASK, DVS_GESTURE_TASK, SHD_TASK)}


def train_task(name: str, rd, log=None, dp: SingleProcess = SINGLE) -> dict:
    """:func:`~.training.train_in` of the task of spec ``name`` (a module-level function of a
    name, so that a data-parallel job can be pickled for its workers)."""
    return train_in(TASKS[name], rd, log, dp)


def evaluate_checkpoint(
    path: str | os.PathLike, data_dir: str | None = None, splits: tuple[str, ...] = ("val", "test"), threads: int = 1
) -> dict:
    """Accuracy of a checkpoint of a ``tha`` classification run (mnist, fmnist, dvs-gesture, shd)
    on the validation split and/or the test set, with the configuration stored in the checkpoint
    (``data_dir`` overrides where the data is read from)."""
    torch.set_num_threads(threads)
    tensors, meta = load_tensors(path)
    task = TASKS.get(meta.get("experiment") or "tha-mnist")
    if task is None or not isinstance(meta.get("config"), dict) or "identity" not in meta:
        others = ", ".join(f"'{t.experiment}'" for t in TASKS.values() if t is not MNIST_TASK)
        raise ConfigError(
            f"{path} is not a 'tha mnist' checkpoint, nor one of {others} (it was written by "
            f"{meta.get('experiment') or 'another command'}): give RUN/trialK/best or RUN/trialK/last of a "
            "`spikeforge tha mnist` (fmnist, dvs-gesture, shd) run"
        )
    cfg: Any = task.spec.schema.from_dict(meta["config"])
    if data_dir is not None:
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"data_dir": data_dir})})
    net: Any = task.build_net(cfg)
    net.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    _, val, test = task.load_splits(cfg)
    out = {
        "checkpoint": str(path),
        "experiment": task.experiment,
        "global_step": meta.get("state", {}).get("global_step"),
        "epochs_done": meta.get("state", {}).get("epoch"),
        "thresholds": [float(l.threshold) for l in net.lif_layers],
    }
    for name, (X, Y) in (("val", val), ("test", test)):
        if name in splits:
            out[f"{name}_acc"] = evaluate(net, X, Y, cfg.train.eval_batch_size)
            out[f"{name}_size"] = int(X.shape[0])
    return out
