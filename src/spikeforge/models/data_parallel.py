"""Batch statistics across time steps and across data-parallel ranks, shared by the gradient-trained
networks (THA, its event networks, the olfaction networks).

* :class:`_BNPerStep` -- batch norm whose statistics are taken per time step over the batch (what a
  ``BatchNorm2d`` called once per step computes), forward and backward in closed form;
* :class:`_SyncBNPerStep` -- the same with the statistics all-reduced over the ranks of a process
  group (``SyncBatchNorm`` per step);
* :class:`BatchShard` -- this rank's rows of a batch split between ranks: whole-batch random draws
  sliced to the rank's rows, one flattened all-reduce, whole-batch batch norm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


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
        rm, rv, nb = bn.running_mean, bn.running_var, bn.num_batches_tracked
        if bn.momentum is None or rm is None or rv is None or nb is None:
            raise ValueError("BatchShard.batch_norm needs a batch norm with running statistics and a momentum")
        with torch.no_grad():
            m_eff = 1.0 - (1.0 - bn.momentum) ** steps
            n = float(n)
            rm.mul_(1.0 - m_eff).add_(mean.reshape(-1), alpha=m_eff)
            rv.mul_(1.0 - m_eff).add_(var.reshape(-1), alpha=m_eff * n / max(n - 1.0, 1.0))
            nb.add_(steps)
        return out[0]
