"""Tensor forms of the STDP update formulas in ``dc_numba`` for the PyTorch engine.

Each returns the weight change for a batch; the engine sums it over the batch (batched STDP is a
different learning rule from sequential STDP whenever B > 1: the updates of all examples of a step
are added before clipping) and clips to [w_min, w_max].
"""

from __future__ import annotations

import torch

from ..plasticity.stdp import STDPParams


def pre_update(
    p: STDPParams, w: torch.Tensor, arrived: torch.Tensor, x_post1: torch.Tensor, x_post2: torch.Tensor
) -> torch.Tensor:
    """``dW [n_in, N]`` for spikes ``arrived [B, n_in, N]`` given post traces ``[B, N]``."""
    if p.kind == "triplet":
        return (p.pre_sign * p.nu_pre) * torch.einsum("bij,bj->ij", arrived, x_post1)
    if p.kind == "postpre":
        return (p.pre_sign * p.nu_pre) * torch.einsum("bij,bj->ij", arrived, x_post1) * w.clamp_min(0) ** p.mu
    return torch.zeros_like(w)


def post_update(
    p: STDPParams, w: torch.Tensor, x_pre: torch.Tensor, post_spikes: torch.Tensor, x_post2_before: torch.Tensor
) -> torch.Tensor:
    """``dW [n_in, N]`` for post spikes ``[B, N]`` given pre traces ``[B, n_in, N]``."""
    if p.kind == "triplet":
        return p.nu_post * torch.einsum("bij,bj->ij", x_pre, post_spikes * x_post2_before)
    if p.kind in ("postpre", "presynaptic"):
        return p.nu_post * torch.einsum("bij,bj->ij", x_pre - p.x_tar, post_spikes) * (p.w_max - w).clamp_min(0) ** p.mu
    if p.kind == "exponential":
        pot = torch.einsum("bij,bj->ij", x_pre, post_spikes) * torch.exp(-p.beta * w)
        dep = post_spikes.sum(0)[None, :] * p.x_tar * torch.exp(-p.beta * (p.w_max - w))
        return p.nu_post * (pot - dep)
    raise NotImplementedError(p.kind)
