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

Both write ``results.json``, curves (PNG) and, for spike timing, GIF animations into the run
directory. Files: ``config.py`` (both configs, specs and flags), ``mnist.py``, ``spike_timing.py``,
``distributed.py`` (data-parallel ``mnist``: ``--nproc-per-node`` / torchrun).
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
from .mnist import evaluate, evaluate_checkpoint, load_tensors, train_mnist, train_mnist_in
from .spike_timing import ramp_target, run_spike_timing, run_spike_timing_in

_load_ckpt = load_tensors  # the name used before the split

__all__ = [
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
