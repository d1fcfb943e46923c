"""Binarized linear and convolution layers (BinaryConnect-style, as in snn-tha).

Forward: the layer uses ``sign(w)`` with ``sign(0) = +1``, so every weight is exactly +1 or -1.
Backward: straight-through estimator, ``dL/dw = dL/dsign(w)`` (identity, no |w| <= 1 cancellation;
snn-tha's ``BinarizeF``, reference §1.8). The optimizer updates the full-precision *latent* weights
(``layer.weight``); :meth:`clamp_latent_` optionally keeps them in [-1, 1] after a step. Biases stay
full precision. Initialisation follows snn-tha: ``U(-s, s)``, ``s = sqrt(1.5 / (fan_in + fan_out))``
(for convolutions the fans include the kernel area), bias 0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class _SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w):
        return torch.where(w >= 0, torch.ones_like(w), -torch.ones_like(w))

    @staticmethod
    def backward(ctx, g):
        return g


def binarize(w: torch.Tensor) -> torch.Tensor:
    """``+1`` where ``w >= 0`` else ``-1``; gradient passed straight through."""
    return _SignSTE.apply(w)


def _tha_init_(weight: torch.Tensor, bias: torch.Tensor | None, fan_in: int, fan_out: int) -> None:
    s = math.sqrt(1.5 / (fan_in + fan_out))
    with torch.no_grad():
        weight.uniform_(-s, s)
        if bias is not None:
            bias.zero_()


class _BinaryMixin:
    clamp_weights: bool

    def binary_weight(self) -> torch.Tensor:
        return binarize(self.weight)

    @torch.no_grad()
    def clamp_latent_(self) -> None:
        """Clamp the latent full-precision weights to [-1, 1] (call after optimizer.step())."""
        self.weight.clamp_(-1.0, 1.0)


class BinaryLinear(_BinaryMixin, nn.Linear):
    """``y = x @ sign(W).T + b`` with straight-through gradients to the latent ``W``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, clamp_weights: bool = False):
        self.clamp_weights = clamp_weights
        super().__init__(in_features, out_features, bias=bias)

    def reset_parameters(self) -> None:
        _tha_init_(self.weight, self.bias, self.in_features, self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.binary_weight(), self.bias)


class BinaryConv2d(_BinaryMixin, nn.Conv2d):
    """2-D convolution with ``sign(W)`` in the forward pass and straight-through gradients."""

    def __init__(self, *args, clamp_weights: bool = False, **kwargs):
        self.clamp_weights = clamp_weights
        super().__init__(*args, **kwargs)

    def reset_parameters(self) -> None:
        k = self.kernel_size[0] * self.kernel_size[1]
        _tha_init_(self.weight, self.bias, self.in_channels * k // self.groups, self.out_channels * k // self.groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.binary_weight(), self.bias)


def clamp_binary_weights_(module: nn.Module, every: bool = False) -> None:
    """Clamp the latent weights of every binarized layer with ``clamp_weights=True`` (with
    ``every``: of every binarized layer)."""
    for m in module.modules():
        if isinstance(m, _BinaryMixin) and (every or m.clamp_weights):
            m.clamp_latent_()
