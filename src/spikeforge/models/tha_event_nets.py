"""The snn-tha networks of the event data sets (Eshraghian & Lu 2022, reference §1.4).

:class:`THADVSGestureNet` -- DVS128 Gesture, 2-polarity event frames of 32 x 32 (128 / 4)::

    conv 2->16 5x5 (no bias) -> avg-pool 2 -> LIF      (snn-tha: batch norm off)
    conv 16->32 5x5 (no bias) -> avg-pool 2 -> LIF
    flatten (800) -> linear 800->11 (bias) -> dropout -> LIF

:class:`THASHDNet` -- SHD, 700 channels binned in time, no recurrence::

    linear 700->3000 (bias) -> dropout p1 -> LIF -> linear 3000->20 (bias) -> dropout p2 -> LIF

Both take time-varying input ``[B, T, ...]`` (``T`` is whatever the data has: snn-tha trains DVS on
100 steps and tests on 360) and return output spikes and membrane ``[B, T, classes]``. Weights are
binarized (sign, straight-through) or full precision; biases, thresholds and beta stay full
precision. The layers run on all ``T x B`` frames at once (time folded into the batch) and each
LIF layer over all steps in :func:`~spikeforge.neurons.leaky_multistep`; dropout draws a mask per
step. :meth:`forward_reference` is the plain per-step loop (the test oracle).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from ..config import ConfigError, Params
from ..neurons.leaky import Leaky, LeakyParams, check_surrogate_name, leaky_multistep, leaky_step
from ..synapses.binarized import BinaryConv2d, BinaryLinear, binarize
from .data_parallel import BatchShard
from .tha_nets import pooled_sizes


class _LIFNetParams(Params):
    beta: float = Field(..., ge=0.0, le=1.0)
    surrogate: str = "fast_sigmoid"
    slope: float = Field(..., gt=0.0)
    binarize: bool = True

    @field_validator("surrogate")
    @classmethod
    def _known_surrogate(cls, v: str) -> str:
        return check_surrogate_name(v)


class THADVSGestureNetParams(_LIFNetParams):
    """Defaults = snn-tha ``dvs/conf.py`` and ``dvs/Net.py`` (reference §1.4-1.5)."""

    in_channels: int = Field(2, ge=1)
    input_size: int = Field(32, ge=12, description="frame side after downsampling (128 / 4)")
    channels1: int = Field(16, ge=1)
    channels2: int = Field(32, ge=1)
    kernel_size: int = Field(5, ge=1)
    num_classes: int = Field(11, ge=2)
    beta: float = Field(0.9297, ge=0.0, le=1.0)
    slope: float = Field(0.24, gt=0.0)
    thresholds: tuple[float, float, float] = (10.4, 16.62, 6.81)
    dropout: float = Field(0.43, ge=0.0, lt=1.0)


class THASHDNetParams(_LIFNetParams):
    """Defaults = snn-tha ``shd/conf.py`` and ``shd/Net.py`` (reference §1.4-1.5)."""

    num_inputs: int = Field(700, ge=1)
    num_hidden: int = Field(3000, ge=1)
    num_classes: int = Field(20, ge=2)
    beta: float = Field(0.95, ge=0.0, le=1.0)
    slope: float = Field(0.257, gt=0.0)
    thresholds: tuple[float, float] = (13.504, 11.20)
    dropout1: float = Field(0.186, ge=0.0, lt=1.0)
    dropout2: float = Field(0.0176, ge=0.0, lt=1.0)


def _lifs(p: _LIFNetParams, thresholds: tuple[float, ...]) -> nn.ModuleList:
    lif = LeakyParams(beta=p.beta, surrogate=p.surrogate, slope=p.slope)
    return nn.ModuleList(Leaky(lif.replace(threshold=t), time_first=True) for t in thresholds)


class _EventNet(nn.Module):
    params: Any
    lifs: nn.ModuleList
    data_parallel: BatchShard | None = None  # set by data-parallel training (see BatchShard)

    @property
    def lif_layers(self) -> list[Leaky]:
        return list(self.lifs)  # type: ignore[arg-type]

    def _w(self, layer: Any) -> torch.Tensor:
        return binarize(layer.weight) if self.params.binarize else layer.weight

    def _lif(self, k: int, current: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """LIF layer ``k`` over all steps of ``current [T, B, ...]``."""
        lif: Any = self.lifs[k]
        return leaky_multistep(current, lif.beta, lif.threshold, lif.surrogate, time_dim=0)

    def _dropout(self, x: torch.Tensor, p: float) -> torch.Tensor:
        """Dropout of ``x [T, B, K]`` (a mask per step); data parallel: this rank's rows of the
        whole batch's mask, as :class:`~spikeforge.models.data_parallel.BatchShard` draws it."""
        shard = self.data_parallel if self.training else None
        if shard is None or p == 0:
            return F.dropout(x, p, self.training)
        return shard.dropout(x.reshape(-1, x.shape[-1]), p, x.shape[0]).view_as(x)

    def _step(self, k: int, current: torch.Tensor, mem: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lif: Any = self.lifs[k]
        return leaky_step(current, mem, lif.beta, lif.threshold, lif.surrogate)

    def _check(self, x: torch.Tensor, frame: tuple[int, ...]) -> None:
        if x.dim() != 2 + len(frame) or tuple(x.shape[2:]) != frame:
            want = ", ".join(map(str, frame))
            raise ConfigError(f"{type(self).__name__} expects input [B, T, {want}], got {tuple(x.shape)}")


class THADVSGestureNet(_EventNet):
    def __init__(self, params: THADVSGestureNetParams | None = None, **kwargs):
        super().__init__()
        p = params or THADVSGestureNetParams.from_dict(kwargs)
        self.params = p
        self.size1, self.size2 = s1, s2 = pooled_sizes(p.input_size, p.kernel_size, "input_size")
        conv = BinaryConv2d if p.binarize else nn.Conv2d
        lin = BinaryLinear if p.binarize else nn.Linear
        self.conv1 = conv(p.in_channels, p.channels1, p.kernel_size, bias=False)
        self.conv2 = conv(p.channels1, p.channels2, p.kernel_size, bias=False)
        self.fc = lin(p.channels2 * s2 * s2, p.num_classes)
        self.lifs = _lifs(p, p.thresholds)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: event frames ``[B, T, C, H, W]``; returns output spikes and membrane ``[B, T, classes]``."""
        p = self.params
        self._check(x, (p.in_channels, p.input_size, p.input_size))
        B, T = x.shape[:2]
        frames = x.transpose(0, 1).reshape(T * B, *x.shape[2:])
        c1 = F.avg_pool2d(F.conv2d(frames, self._w(self.conv1)), 2)
        s1, _ = self._lif(0, c1.view(T, B, *c1.shape[1:]))
        c2 = F.avg_pool2d(F.conv2d(s1.reshape(T * B, *c1.shape[1:]), self._w(self.conv2)), 2)
        s2, _ = self._lif(1, c2.view(T, B, *c2.shape[1:]))
        c3 = self._dropout(F.linear(s2.reshape(T, B, -1), self._w(self.fc), self.fc.bias), p.dropout)
        s3, u3 = self._lif(2, c3)
        return s3.transpose(0, 1), u3.transpose(0, 1)

    def forward_reference(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """snn-tha's per-step loop, written plainly (for tests)."""
        p = self.params
        self._check(x, (p.in_channels, p.input_size, p.input_size))
        u = [torch.zeros(())] * 3
        spikes, mems = [], []
        for t in range(x.shape[1]):
            s, u[0] = self._step(0, F.avg_pool2d(F.conv2d(x[:, t], self._w(self.conv1)), 2), u[0])
            s, u[1] = self._step(1, F.avg_pool2d(F.conv2d(s, self._w(self.conv2)), 2), u[1])
            c = F.dropout(F.linear(s.flatten(1), self._w(self.fc), self.fc.bias), p.dropout, self.training)
            s, u[2] = self._step(2, c, u[2])
            spikes.append(s)
            mems.append(u[2])
        return torch.stack(spikes, 1), torch.stack(mems, 1)


class THASHDNet(_EventNet):
    def __init__(self, params: THASHDNetParams | None = None, **kwargs):
        super().__init__()
        p = params or THASHDNetParams.from_dict(kwargs)
        self.params = p
        lin = BinaryLinear if p.binarize else nn.Linear
        self.fc1 = lin(p.num_inputs, p.num_hidden)
        self.fc2 = lin(p.num_hidden, p.num_classes)
        self.lifs = _lifs(p, p.thresholds)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: binned spikes ``[B, T, channels]``; returns output spikes and membrane ``[B, T, classes]``."""
        p = self.params
        self._check(x, (p.num_inputs,))
        c1 = self._dropout(F.linear(x.transpose(0, 1), self._w(self.fc1), self.fc1.bias), p.dropout1)
        s1, _ = self._lif(0, c1)
        c2 = self._dropout(F.linear(s1, self._w(self.fc2), self.fc2.bias), p.dropout2)
        s2, u2 = self._lif(1, c2)
        return s2.transpose(0, 1), u2.transpose(0, 1)

    def forward_reference(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """snn-tha's per-step loop, written plainly (for tests)."""
        p = self.params
        self._check(x, (p.num_inputs,))
        u = [torch.zeros(())] * 2
        spikes, mems = [], []
        for t in range(x.shape[1]):
            c = F.dropout(F.linear(x[:, t], self._w(self.fc1), self.fc1.bias), p.dropout1, self.training)
            s, u[0] = self._step(0, c, u[0])
            c = F.dropout(F.linear(s, self._w(self.fc2), self.fc2.bias), p.dropout2, self.training)
            s, u[1] = self._step(1, c, u[1])
            spikes.append(s)
            mems.append(u[1])
        return torch.stack(spikes, 1), torch.stack(mems, 1)
