"""Networks of the threshold-annealing paper (Eshraghian & Lu 2022; code jeshraghian/snn-tha).

:class:`THAMnistNet` -- the snn-tha MNIST/FashionMNIST network (reference §1.4)::

    conv 1->16 5x5 (no bias) -> avg-pool 2 -> batch norm -> LIF
    conv 16->64 5x5 (no bias) -> avg-pool 2 -> batch norm -> LIF
    flatten (1024) -> linear 1024->10 (bias) -> dropout -> LIF          (x num_steps, direct input)

Weights binarized or full precision (biases, batch norm, thresholds, beta always full precision).
It computes exactly what the per-step snn-tha loop computes (:meth:`forward_reference`, kept as the
test oracle), organised for speed:

* the input is static (direct encoding), so conv1 -> pool -> BN1 is computed **once**, and LIF1
  reads that current at every step inside the compiled kernel;
* BN1 in training mode: every step of the per-step loop sees the same batch, so the normalisation
  is the same, and the ``T`` running-statistics updates with momentum ``m`` are applied at once as
  one update with momentum ``1 - (1 - m)^T``;
* conv2 and the 2x2 average pool are one convolution with a 6x6 kernel and stride 2 (the pooled
  kernel is the average of the four shifted 5x5 kernels: 2.7x fewer multiplications), applied to
  all ``T x B`` spike maps at once (time folded into the batch), channels-last;
* **BN2 statistics are per time step** over the batch and the 4x4 positions, exactly as a shared
  ``BatchNorm2d`` called once per step in snn-tha (not pooled over ``T x B``); its running
  statistics receive the ``T`` sequential momentum updates in closed form
  ``r_T = (1-m)^T r_0 + sum_t m (1-m)^(T-1-t) x_t``; in eval mode the running statistics are used;
* the LIF layers run over all steps in the fused kernel (:func:`spikeforge.neurons.leaky_multistep`);
* the linear layer runs on all ``T x B`` spike vectors at once; the flatten order of snn-tha
  (channel, row, column) is kept by permuting the weight columns instead of the spikes;
* dropout draws an independent mask for every step, as the per-step loop does;
* data-parallel training (``net.data_parallel = BatchShard(...)``): both batch norms take their
  statistics over the whole batch of all ranks (:class:`_SyncBNPerStep`) and the dropout masks are
  the rank's rows of the whole batch's mask, so the ranks compute what one process computes.

:class:`SpikeTimingNet` -- the section-4 toy network 100-1000-1 (reference §2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from ..config import ConfigError, Params
from ..neurons.leaky import Leaky, LeakyParams, check_surrogate_name, leaky_multistep, leaky_step
from ..synapses.binarized import BinaryConv2d, BinaryLinear, binarize
from .data_parallel import BatchShard, _BNPerStep, _SyncBNPerStep


class THAMnistNetParams(Params):
    """Architecture and neuron parameters; defaults = snn-tha ``mnist/conf.py`` (reference §1.5).
    ``thresholds`` are the values the LIF layers start with (the annealing schedule, if any, sets
    them again)."""

    in_channels: int = Field(1, ge=1)
    image_size: int = Field(28, ge=12)
    channels1: int = Field(16, ge=1)
    channels2: int = Field(64, ge=1)
    kernel_size: int = Field(5, ge=1)
    num_classes: int = Field(10, ge=2)
    num_steps: int = Field(100, ge=1)
    beta: float = Field(0.99, ge=0.0, le=1.0)
    surrogate: str = "fast_sigmoid"
    slope: float = Field(10.22, gt=0.0)
    thresholds: tuple[float, float, float] = (11.666, 14.105, 0.6656)
    dropout: float = Field(0.02856, ge=0.0, lt=1.0)
    batch_norm: bool = True
    bn_momentum: float = Field(0.1, gt=0.0, le=1.0)
    bn_eps: float = Field(1e-5, gt=0.0)
    binarize: bool = True

    @field_validator("surrogate")
    @classmethod
    def _known_surrogate(cls, v: str) -> str:
        return check_surrogate_name(v)


def pooled_sizes(size: int, kernel_size: int, name: str = "image_size") -> tuple[int, int]:
    """Feature-map sides after conv (``kernel_size``, no padding) -> 2x2 pool, twice; both must be even."""
    s1 = (size - kernel_size + 1) // 2
    s2 = (s1 - kernel_size + 1) // 2
    if s2 < 1 or (size - kernel_size + 1) % 2 or (s1 - kernel_size + 1) % 2:
        raise ConfigError(
            f"{name} {size} with kernel_size {kernel_size} does not give even feature maps for the two 2x2 poolings"
        )
    return s1, s2


def _pooled_kernel(w: torch.Tensor) -> torch.Tensor:
    """Kernel of ``avg_pool2d(conv2d(x, w), 2)`` as one stride-2 convolution (size k+1)."""
    return 0.25 * (F.pad(w, (0, 1, 0, 1)) + F.pad(w, (1, 0, 0, 1)) + F.pad(w, (0, 1, 1, 0)) + F.pad(w, (1, 0, 1, 0)))


class THAMnistNet(nn.Module):
    def __init__(self, params: THAMnistNetParams | None = None, **kwargs):
        super().__init__()
        p = params or THAMnistNetParams.from_dict(kwargs)
        self.params = p
        self.size1, self.size2 = s1, s2 = pooled_sizes(p.image_size, p.kernel_size, "image_size")
        self.num_features = p.channels2 * s2 * s2
        conv = (lambda *a, **k: BinaryConv2d(*a, **k)) if p.binarize else nn.Conv2d
        lin = BinaryLinear if p.binarize else nn.Linear
        self.conv1 = conv(p.in_channels, p.channels1, p.kernel_size, bias=False)
        self.conv2 = conv(p.channels1, p.channels2, p.kernel_size, bias=False)
        self.fc = lin(self.num_features, p.num_classes)
        self.bn1 = nn.BatchNorm2d(p.channels1, eps=p.bn_eps, momentum=p.bn_momentum)
        self.bn2 = nn.BatchNorm2d(p.channels2, eps=p.bn_eps, momentum=p.bn_momentum)
        lif = LeakyParams(beta=p.beta, surrogate=p.surrogate, slope=p.slope)
        self.lif1 = Leaky(lif.replace(threshold=p.thresholds[0]), time_first=True)
        self.lif2 = Leaky(lif.replace(threshold=p.thresholds[1]), time_first=True)
        self.lif3 = Leaky(lif.replace(threshold=p.thresholds[2]), time_first=True, return_mem=True)
        self.data_parallel: BatchShard | None = None  # set by data-parallel training (see BatchShard)

    @property
    def lif_layers(self) -> list[Leaky]:
        return [self.lif1, self.lif2, self.lif3]

    def _w(self, layer: nn.Module) -> torch.Tensor:
        return binarize(layer.weight) if self.params.binarize else layer.weight

    def _check_input(self, x: torch.Tensor) -> None:
        p = self.params
        want = (p.in_channels, p.image_size, p.image_size)
        if x.dim() == 3 and p.in_channels == 1:
            x = x.unsqueeze(1)
        if x.dim() != 4 or tuple(x.shape[1:]) != want:
            raise ConfigError(
                f"THAMnistNet expects images of shape [B, {want[0]}, {want[1]}, "
                f"{want[2]}] (static, direct encoding), got {tuple(x.shape)}"
            )

    # -- fast path ---------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: images ``[B, C, H, W]`` (values as given, e.g. in [0, 1]). Returns output spikes
        and output membrane, both ``[B, T, num_classes]``."""
        self._check_input(x)
        if x.dim() == 3:
            x = x.unsqueeze(1)
        p = self.params
        T, B = p.num_steps, x.shape[0]
        c1 = F.avg_pool2d(F.conv2d(x, self._w(self.conv1)), 2)  # [B, C1, s1, s1]
        shard = self.data_parallel if self.training else None
        if p.batch_norm:
            c1 = self._bn_static(c1, self.bn1, T) if shard is None else self._bn_static_sync(c1, self.bn1, T, shard)
        c1 = c1.permute(0, 2, 3, 1).contiguous()  # channels-last: the spikes come out that way
        s1, _ = leaky_multistep(
            c1, self.lif1.beta, self.lif1.threshold, self.lif1.surrogate, time_dim=0, num_steps=T
        )  # [T, B, s1, s1, C1]
        s1 = s1.reshape(T * B, self.size1, self.size1, p.channels1).permute(0, 3, 1, 2)
        w2 = _pooled_kernel(self._w(self.conv2)).contiguous(memory_format=torch.channels_last)
        c2 = F.conv2d(s1, w2, stride=2)  # [T*B, C2, s2, s2], channels-last
        c2 = c2.permute(0, 2, 3, 1).reshape(T, B * self.size2 * self.size2, p.channels2)
        if p.batch_norm:
            c2 = self._bn_per_step(c2, self.bn2, shard)
        s2, _ = leaky_multistep(
            c2.reshape(T, B, -1), self.lif2.beta, self.lif2.threshold, self.lif2.surrogate, time_dim=0
        )  # [T, B, s2*s2*C2] (h, w, c)
        wf = self._w(self.fc)
        wf = wf.view(p.num_classes, p.channels2, self.size2, self.size2).permute(0, 2, 3, 1)
        c3 = F.linear(s2.reshape(T * B, -1), wf.reshape(p.num_classes, -1), self.fc.bias)
        if p.dropout > 0:
            c3 = F.dropout(c3, p.dropout, self.training) if shard is None else shard.dropout(c3, p.dropout, T)
        s3, u3 = leaky_multistep(
            c3.view(T, B, -1), self.lif3.beta, self.lif3.threshold, self.lif3.surrogate, time_dim=0
        )
        return s3.transpose(0, 1), u3.transpose(0, 1)

    def _bn_static(self, x: torch.Tensor, bn: nn.BatchNorm2d, T: int) -> torch.Tensor:
        if not self.training:
            return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        m_eff = 1.0 - (1.0 - bn.momentum) ** T
        out = F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, True, m_eff, bn.eps)
        bn.num_batches_tracked.add_(T)
        return out

    def _bn_static_sync(self, x: torch.Tensor, bn: nn.BatchNorm2d, T: int, shard: BatchShard) -> torch.Tensor:
        """:meth:`_bn_static` in training mode, statistics over the whole batch of ``shard.group``."""
        b, c, h, w = x.shape
        out = shard.batch_norm(x.permute(0, 2, 3, 1).reshape(b * h * w, c), bn, T)
        return out.reshape(b, h, w, c).permute(0, 3, 1, 2)

    def _bn_per_step(self, y: torch.Tensor, bn: nn.BatchNorm2d, shard: BatchShard | None = None) -> torch.Tensor:
        """``y``: ``[T, N, C]`` (N = batch x positions); statistics per step and channel (over the
        whole batch of ``shard.group`` when given)."""
        if not self.training:
            scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
            return (y - bn.running_mean) * scale + bn.bias
        if shard is None:
            out, mean, var, _ = _BNPerStep.apply(y, bn.weight, bn.bias, bn.eps)
            n: float = y.shape[1]
        else:
            out, mean, var, count = _SyncBNPerStep.apply(y, bn.weight, bn.bias, bn.eps, shard.group)
            n = float(count)
        with torch.no_grad():
            T = y.shape[0]
            m = bn.momentum
            w = m * (1.0 - m) ** torch.arange(T - 1, -1, -1, dtype=torch.float64, device=y.device)
            decay = (1.0 - m) ** T
            mu = mean.reshape(T, -1).double()
            vu = var.reshape(T, -1).double() * (n / max(n - 1, 1))
            bn.running_mean.copy_(decay * bn.running_mean.double() + (w[:, None] * mu).sum(0))
            bn.running_var.copy_(decay * bn.running_var.double() + (w[:, None] * vu).sum(0))
            bn.num_batches_tracked.add_(T)
        return out

    # -- oracle --------------------------------------------------------------------------------
    def forward_reference(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The snn-tha per-step loop, written plainly (slow; for tests and benchmarks): every
        step recomputes conv1, applies the shared BatchNorm2d modules in their own mode, and
        advances each LIF by :func:`leaky_step`. Returns the same as :meth:`forward`."""
        self._check_input(x)
        if x.dim() == 3:
            x = x.unsqueeze(1)
        p = self.params
        B = x.shape[0]
        u1 = u2 = u3 = torch.zeros((), dtype=x.dtype)
        spikes, mems = [], []
        for _ in range(p.num_steps):
            c = F.avg_pool2d(F.conv2d(x, self._w(self.conv1)), 2)
            c = self.bn1(c) if p.batch_norm else c
            s, u1 = leaky_step(c, u1, self.lif1.beta, self.lif1.threshold, self.lif1.surrogate)
            c = F.avg_pool2d(F.conv2d(s, self._w(self.conv2)), 2)
            c = self.bn2(c) if p.batch_norm else c
            s, u2 = leaky_step(c, u2, self.lif2.beta, self.lif2.threshold, self.lif2.surrogate)
            c = F.linear(s.reshape(B, -1), self._w(self.fc), self.fc.bias)
            if p.dropout > 0:
                c = F.dropout(c, p.dropout, self.training)
            s, u3 = leaky_step(c, u3, self.lif3.beta, self.lif3.threshold, self.lif3.surrogate)
            spikes.append(s)
            mems.append(u3)
        return torch.stack(spikes, 1), torch.stack(mems, 1)


class SpikeTimingNetParams(Params):
    """Section-4 network (reference §2): 100-1000-1, both LIF layers share beta/threshold."""

    num_inputs: int = Field(100, ge=1)
    num_hidden: int = Field(1000, ge=1)
    num_outputs: int = Field(1, ge=1)
    beta: float = Field(0.6, ge=0.0, le=1.0)
    threshold: float = Field(1.0, gt=0.0)
    surrogate: str = "fast_sigmoid"
    slope: float = Field(5.0, gt=0.0)
    binarize: bool = False

    @field_validator("surrogate")
    @classmethod
    def _known_surrogate(cls, v: str) -> str:
        return check_surrogate_name(v)


class SpikeTimingNet(nn.Module):
    def __init__(self, params: SpikeTimingNetParams | None = None, **kwargs):
        super().__init__()
        p = params or SpikeTimingNetParams.from_dict(kwargs)
        self.params = p
        lin = BinaryLinear if p.binarize else nn.Linear
        self.fc1 = lin(p.num_inputs, p.num_hidden)
        self.fc2 = lin(p.num_hidden, p.num_outputs)
        lif = LeakyParams(beta=p.beta, threshold=p.threshold, surrogate=p.surrogate, slope=p.slope)
        self.lif1 = Leaky(lif)
        self.lif2 = Leaky(lif, return_mem=True)

    @property
    def lif_layers(self) -> list[Leaky]:
        return [self.lif1, self.lif2]

    def forward(self, x: torch.Tensor):
        """``x``: input spikes ``[B, T, num_inputs]``; returns (hidden spikes, output spikes,
        output membrane), batch-first."""
        if x.dim() != 3 or x.shape[2] != self.params.num_inputs:
            raise ConfigError(f"SpikeTimingNet expects input [B, T, {self.params.num_inputs}], got {tuple(x.shape)}")
        h = self.lif1(self.fc1(x))
        s, u = self.lif2(self.fc2(h))
        return h, s, u
