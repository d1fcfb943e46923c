"""Threshold-annealing experiments (Eshraghian & Lu 2022, code ``jeshraghian/snn-tha``).

``mnist``: train :class:`~spikeforge.models.tha_nets.THAMnistNet` on MNIST with the snn-tha
hyper-parameters (reference §1.4-1.5): Adam, cosine learning rate stepped per iteration,
``mse_count_loss(0.8, 0.2)``, spike-count accuracy, per-iteration threshold annealing. Differences
from snn-tha, on purpose (reference §1.10): a validation split taken from the *training* set selects
the best epoch (snn-tha used the test set), each trial has its own seed (``seed + trial``), and
the run is checkpointed every few iterations and resumes where it stopped.

``spike_timing``: the section-4 task (reference §2): a 100-1000-1 network, 100 steps, one fixed
Bernoulli input, the output membrane trained by MSE to ramp linearly to just above threshold at
step 75; four cases (full precision theta=1, binarized theta=1, binarized theta=50, binarized with
theta annealed 5 -> 50).

``fmnist``, ``dvs_gesture``, ``shd`` (``datasets.py``, configs in ``dataset_config.py``): the
snn-tha network and ``conf.py`` hyper-parameters of Fashion-MNIST (the MNIST network), DVS128
Gesture (a conv net on 2-polarity event frames) and SHD (700-3000-20), trained by the same loop
(``training.py``) on data read from local folders.

All write ``results.json``, curves (PNG) and, for spike timing, GIF animations into the run
directory. Files: ``config.py`` (both configs, specs and flags), ``mnist.py``, ``spike_timing.py``,
``distributed.py`` (data-parallel ``mnist``: ``--nproc-per-node`` / torchrun), ``training.py``
(the loop every classification experiment shares), ``tasks.py`` (all of them by name, and
``evaluate_checkpoint``).
"""

from __future__ import annotations

from .config import (
    MNIST_FLAGS,
    MNIST_SPEC,
    SPIKE_TIMING_FLAGS,
    SPIKE_TIMING_SPEC,
    AnnealSection,
    DataSection,
    MnistConfig,
    RunSection,
    SpikeTimingCase,
    SpikeTimingConfig,
    TrainSection,
    load_config,
)
from .dataset_config import (
    DVS_GESTURE_FLAGS,
    DVS_GESTURE_SPEC,
    FMNIST_FLAGS,
    FMNIST_SPEC,
    SHD_FLAGS,
    SHD_SPEC,
    DVSGestureConfig,
    FmnistConfig,
    SHDConfig,
)
from .datasets import DVS_GESTURE_TASK, FMNIST_TASK, SHD_TASK
from .mnist import MNIST_TASK, evaluate, load_tensors, train_mnist, train_mnist_in
from .spike_timing import ramp_target, run_spike_timing, run_spike_timing_in
from .tasks import TASKS, evaluate_checkpoint
from .training import THATask, train_in

_load_ckpt = load_tensors  # the name used before the split

__all__ = [
    "DVS_GESTURE_FLAGS",
    "DVS_GESTURE_SPEC",
    "DVS_GESTURE_TASK",
    "FMNIST_FLAGS",
    "FMNIST_SPEC",
    "FMNIST_TASK",
    "MNIST_TASK",
    "SHD_FLAGS",
    "SHD_SPEC",
    "SHD_TASK",
    "TASKS",
    "DVSGestureConfig",
    "FmnistConfig",
    "SHDConfig",
    "THATask",
    "train_in",
    "MNIST_FLAGS",
    "MNIST_SPEC",
    "SPIKE_TIMING_FLAGS",
    "SPIKE_TIMING_SPEC",
    "AnnealSection",
    "DataSection",
    "MnistConfig",
    "RunSection",
    "SpikeTimingCase",
    "SpikeTimingConfig",
    "TrainSection",
    "evaluate",
    "evaluate_checkpoint",
    "load_config",
    "load_tensors",
    "ramp_target",
    "run_spike_timing",
    "run_spike_timing_in",
    "train_mnist",
    "train_mnist_in",
]
