"""Losses and read-outs for spiking outputs ``[B, T, C]`` (batch-first; pass ``time_dim=0`` for
``[T, B, C]``).

* :func:`spike_count_mse`: MSE between each output's spike count and a target count,
  ``int(correct_rate * T)`` for the labelled class and ``int(incorrect_rate * T)`` for the others,
  divided by ``T`` (the snn-tha / snnTorch ``mse_count_loss`` definition, reference §3.5).
* :func:`count_cross_entropy`: cross-entropy of the spike counts used as logits.
* :func:`membrane_mse`: MSE between a membrane trace and a target trace (same shape).
* :func:`spike_count_accuracy`: fraction where the class with the most spikes is the label
  (ties go to the lowest class index).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import ConfigError


def _counts(spikes: torch.Tensor, time_dim: int) -> tuple[torch.Tensor, int]:
    if spikes.dim() != 3:
        raise ConfigError(
            f"output spikes must be [B, T, C] (or [T, B, C] with time_dim=0), got shape {tuple(spikes.shape)}"
        )
    return spikes.sum(time_dim), spikes.shape[time_dim]


def _check_labels(counts: torch.Tensor, labels: torch.Tensor) -> None:
    if labels.dim() != 1 or labels.shape[0] != counts.shape[0]:
        raise ConfigError(f"labels of shape {tuple(labels.shape)} do not match a batch of {counts.shape[0]} outputs")


def spike_count_mse(
    spikes: torch.Tensor,
    labels: torch.Tensor,
    correct_rate: float = 0.8,
    incorrect_rate: float = 0.2,
    time_dim: int = 1,
) -> torch.Tensor:
    counts, T = _counts(spikes, time_dim)
    _check_labels(counts, labels)
    if not (0.0 <= incorrect_rate <= 1.0 and 0.0 <= correct_rate <= 1.0):
        raise ConfigError(f"rates must be in [0, 1], got correct_rate={correct_rate}, incorrect_rate={incorrect_rate}")
    target = torch.full_like(counts, float(int(T * incorrect_rate)))
    target.scatter_(1, labels.long().view(-1, 1), float(int(T * correct_rate)))
    return F.mse_loss(counts, target) / T


def count_cross_entropy(spikes: torch.Tensor, labels: torch.Tensor, time_dim: int = 1) -> torch.Tensor:
    counts, _ = _counts(spikes, time_dim)
    _check_labels(counts, labels)
    return F.cross_entropy(counts, labels.long())


def membrane_mse(mem: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if mem.shape != target.shape:
        raise ConfigError(f"membrane of shape {tuple(mem.shape)} and target of shape {tuple(target.shape)} differ")
    return F.mse_loss(mem, target)


def spike_count_predictions(spikes: torch.Tensor, time_dim: int = 1) -> torch.Tensor:
    counts, _ = _counts(spikes, time_dim)
    return counts.argmax(1)


def spike_count_accuracy(spikes: torch.Tensor, labels: torch.Tensor, time_dim: int = 1) -> float:
    pred = spike_count_predictions(spikes, time_dim)
    _check_labels(pred.unsqueeze(1), labels)
    return float((pred == labels.long()).float().mean())
