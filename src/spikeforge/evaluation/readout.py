"""A linear readout of spiking features: softmax regression (PyTorch, Adam, cosine learning rate)
on standardised inputs, and its predictions."""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F


class ReadoutSettings(Protocol):
    """What :func:`train_readout` reads (e.g. the event-STDP experiment's ``[readout]`` section)."""

    epochs: int
    learning_rate: float
    batch_size: int
    weight_decay: float


def train_readout(x_train: torch.Tensor, y_train: torch.Tensor, p: ReadoutSettings, seed: int, n_classes: int = 10):
    """Softmax regression with Adam on standardised features. Returns ``(weight [C, D],
    bias [C], mean [D], std [D], loss_history)``."""
    mean = x_train.mean(0)
    std = x_train.std(0).clamp_min(1e-6)
    xs = x_train.sub(mean).div_(std)
    gen = torch.Generator().manual_seed(seed)
    lin = torch.nn.Linear(xs.shape[1], n_classes)
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.zero_()
    opt = torch.optim.Adam(lin.parameters(), lr=p.learning_rate, weight_decay=p.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=p.epochs)
    history = []
    for _ in range(p.epochs):
        order = torch.randperm(xs.shape[0], generator=gen)
        total = 0.0
        for b in range(0, xs.shape[0], p.batch_size):
            idx = order[b : b + p.batch_size]
            loss = F.cross_entropy(lin(xs[idx]), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.shape[0]
        sched.step()
        history.append(total / xs.shape[0])
    return lin.weight.detach().clone(), lin.bias.detach().clone(), mean, std, history


def readout_predict(x: torch.Tensor, weight, bias, mean, std) -> torch.Tensor:
    return (((x - mean) / std) @ weight.T + bias).argmax(dim=1)
