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

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from ..config import ConfigError, Params
from ..neurons.leaky import Leaky, LeakyParams, check_surrogate_name, leaky_multistep, leaky_step
from ..synapses.binarized import BinaryConv2d, BinaryLinear, binarize


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


class _BNPerStep(torch.autograd.Function):
    """Batch norm of ``y [T, N, C]`` with statistics per step ``t`` and channel over ``N``, and
    the textbook backward in a few whole-tensor passes (autograd's version of the same
    expression costs about four times as much here)."""

    @staticmethod
    def forward(ctx, y, weight, bias, eps):
        n = y.shape[1]
        mean = y.mean(1, keepdim=True)
        xhat = y - mean
        var = torch.linalg.vector_norm(xhat, dim=1, keepdim=True).square_().div_(n)
        out = _bn_normalise(ctx, xhat, var, weight, bias, eps)
        ctx.n = n
        count = torch.tensor(float(n))
        ctx.mark_non_differentiable(mean, var, count)
        return out, mean, var, count

    @staticmethod
    def backward(ctx, g, _gm, _gv, _gn):
        xhat, rstd, weight = ctx.saved_tensors
        sum_gx, sum_g = (g * xhat).sum(1, keepdim=True), g.sum(1, keepdim=True)  # [T, 1, C]
        return _bn_input_grad(g, xhat, rstd, weight, sum_gx, sum_g, ctx.n), sum_gx.sum((0, 1)), sum_g.sum((0, 1)), None


class _SyncBNPerStep(torch.autograd.Function):
    """:class:`_BNPerStep` over a batch split between the ranks of ``group`` (data parallel), as
    ``torch.nn.SyncBatchNorm`` does: forward all-reduces each rank's count, sum and sum of squares
    (per step and channel, in float64, from the rank's own mean and squared deviations, so no
    precision is lost to ``E[x^2] - E[x]^2``); backward all-reduces the two gradient sums. The
    statistics, the normalised output and the input gradient are then those of one process on
    the whole batch; the weight and bias gradients are this rank's share (DDP averages them, and
    the loss of each rank is the mean over its own rows, so the average is the whole batch's)."""

    @staticmethod
    def forward(ctx, y, weight, bias, eps, group):
        import torch.distributed as dist

        n = y.shape[1]
        mean_r = y.mean(1, keepdim=True)
        m2_r = torch.linalg.vector_norm(y - mean_r, dim=1, keepdim=True).square_()
        mean_r, m2_r = mean_r.double(), m2_r.double()
        count = torch.full_like(mean_r[..., :1], float(n))
        stats = torch.cat([n * mean_r, m2_r + n * mean_r.square(), count], -1)  # [T, 1, 2C + 1]
        dist.all_reduce(stats, group=group)
        c = y.shape[2]
        total = stats[..., 2 * c :]
        mean = stats[..., :c] / total
        var = ((stats[..., c : 2 * c] - total * mean.square()) / total).clamp_min_(0.0)
        mean, var = mean.to(y.dtype), var.to(y.dtype)
        out = _bn_normalise(ctx, y - mean, var, weight, bias, eps)
        ctx.n, ctx.group = float(total.reshape(-1)[0]), group
        count = total.reshape(-1)[0].to(y.dtype)
        ctx.mark_non_differentiable(mean, var, count)
        return out, mean, var, count

    @staticmethod
    def backward(ctx, g, _gm, _gv, _gn):
        import torch.distributed as dist

        xhat, rstd, weight = ctx.saved_tensors
        sum_gx, sum_g = (g * xhat).sum(1, keepdim=True), g.sum(1, keepdim=True)  # this rank's rows
        sums = torch.cat([sum_gx, sum_g], -1)
        dist.all_reduce(sums, group=ctx.group)
        c = g.shape[2]
        dx = _bn_input_grad(g, xhat, rstd, weight, sums[..., :c], sums[..., c:], ctx.n)
        return dx, sum_gx.sum((0, 1)), sum_g.sum((0, 1)), None, None


def _bn_normalise(ctx, xhat, var, weight, bias, eps):
    """``(y - mean) -> weight * (y - mean) / sqrt(var + eps) + bias`` in place; saves for backward."""
    rstd = torch.rsqrt(var + eps)
    xhat.mul_(rstd)
    out = torch.addcmul(bias, xhat, weight)
    ctx.save_for_backward(xhat, rstd, weight)
    return out


def _bn_input_grad(g, xhat, rstd, weight, sum_gx, sum_g, n):
    return torch.addcmul(g - sum_g / n, xhat, sum_gx / n, value=-1.0).mul_(rstd * weight)


@dataclass
class BatchShard:
    """This process's rows ``[start, start + size)`` of a training batch of ``global_size`` rows
    split between the ranks of the process group ``group`` (data-parallel training). While a
    :class:`THAMnistNet` in training mode has one (``net.data_parallel``), its batch norms take
    their statistics over the whole batch (all-reduced, as ``SyncBatchNorm``) and its dropout
    masks are this shard's rows of the mask one process would draw for the whole batch, so every
    rank draws the same numbers from the (identically seeded) default generator. The olfaction
    networks use it the same way (:meth:`draw`, :meth:`mean_over_batch`, :meth:`batch_norm`)."""

    group: Any
    start: int = 0
    size: int = 0
    global_size: int = 0

    def dropout(self, x: torch.Tensor, p: float, num_steps: int) -> torch.Tensor:
        """``F.dropout`` of ``x [T * size, K]`` (time-major) with the whole batch's mask: on the
        CPU the same draws as ``F.dropout`` of ``[T * global_size, K]`` in one process."""
        k = x.shape[-1]
        keep = torch.empty(num_steps * self.global_size, k, dtype=x.dtype, device=x.device).bernoulli_(1.0 - p)
        keep = keep.div_(1.0 - p).view(num_steps, self.global_size, k)[:, self.start : self.start + self.size]
        return x * keep.reshape(-1, k)

    def draw(self, fn: Any, shape: tuple[int, ...], generator=None, dtype=None) -> torch.Tensor:
        """``fn(shape)`` (``torch.rand``, ``torch.randn``; ``shape[0]``: this shard's rows) as this
        shard's rows of the draw one process makes for the whole batch."""
        whole = fn((self.global_size, *shape[1:]), generator=generator, dtype=dtype)
        return whole[self.start : self.start + self.size]

    def all_sum(self, tensors: list[torch.Tensor], scale: float = 1.0) -> None:
        """In place: every tensor (times ``scale``) summed over the ranks, in one all-reduce of
        all of them flattened."""
        import torch.distributed as dist

        flat = torch.cat([t.reshape(-1) for t in tensors])
        if scale != 1.0:
            flat.mul_(scale)
        dist.all_reduce(flat, group=self.group)
        offset = 0
        for t in tensors:
            t.copy_(flat[offset : offset + t.numel()].view_as(t))
            offset += t.numel()

    def mean_over_batch(self, tensors: list[torch.Tensor]) -> None:
        """In place: tensors that are means over this shard's rows become the means over the whole
        batch (each rank's weighted by its share of the rows; one all-reduce)."""
        self.all_sum(tensors, self.size / self.global_size)

    def batch_norm(self, y: torch.Tensor, bn: nn.modules.batchnorm._BatchNorm, steps: int = 1) -> torch.Tensor:
        """Training-mode batch norm of ``y [size, C]`` (this shard's rows) with the statistics of
        the whole batch (``SyncBatchNorm``'s forward and backward); ``bn``'s running statistics get
        ``steps`` momentum updates with the same statistics at once."""
        out, mean, var, n = _SyncBNPerStep.apply(y[None], bn.weight, bn.bias, bn.eps, self.group)
        with torch.no_grad():
            m_eff = 1.0 - (1.0 - bn.momentum) ** steps
            n = float(n)
            bn.running_mean.mul_(1.0 - m_eff).add_(mean.reshape(-1), alpha=m_eff)
            bn.running_var.mul_(1.0 - m_eff).add_(var.reshape(-1), alpha=m_eff * n / max(n - 1.0, 1.0))
            bn.num_batches_tracked.add_(steps)
        return out[0]


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
