"""Projections between populations: dense, one-to-one and all-but-self, and weight normalisation.

Each takes presynaptic spikes (or rates) ``x [..., n_pre]`` and returns the input each postsynaptic
neuron receives ``[..., n_post]``. In a conductance-based model that input is added to ``g_e`` or
``g_i``; in a current-based one it is a current.

All-but-self (Diehl & Cook's Ai -> Ae: every inhibitory neuron inhibits every excitatory neuron but
its partner) is computed as total minus self, O(N) rather than an N x N matrix product:
at N = 6400 the dense matrix would hold 41 M entries.

Column normalisation (Diehl & Cook: every neuron's input weights scaled to sum to 78 before each
presentation) has its one home here, in three forms: numpy (:func:`normalize_columns`), compiled
(:func:`normalize_columns_c`, the compiled engine) and torch (:func:`normalize_columns_torch`).
"""

from __future__ import annotations

import numpy as np
import torch

from ..jit import kernel


def dense(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """All-to-all: ``x @ W`` with ``W [n_pre, n_post]``."""
    if x.shape[-1] != weights.shape[0]:
        raise ValueError(
            f"dense projection: input has {x.shape[-1]} units but the weights expect "
            f"{weights.shape[0]} (weights shape {tuple(weights.shape)})"
        )
    return x @ weights


def one_to_one(x: torch.Tensor, weight: float | torch.Tensor) -> torch.Tensor:
    """Unit i drives unit i only: ``x * w`` (w scalar or per unit)."""
    return x * weight


def all_but_self(x: torch.Tensor, weight: float) -> torch.Tensor:
    """Unit i drives every unit but i: ``w * (sum(x) - x)``, equal to ``x @ (w * (1 - I))``."""
    return weight * (x.sum(-1, keepdim=True) - x)


def normalize_columns(weights: np.ndarray, total: float) -> np.ndarray:
    """Scale each column (the inputs of one postsynaptic neuron) in place so that it sums to
    ``total`` (Diehl & Cook: 78 before every presentation). A column of zeros is left unchanged."""
    sums = weights.sum(axis=0)
    factors = np.divide(total, sums, out=np.ones_like(sums), where=sums > 0)
    weights *= factors[None, :]
    return weights


@kernel
def normalize_columns_c(W, total):
    """:func:`normalize_columns` compiled, in place (two passes over ``W`` in row order)."""
    n_in, n = W.shape
    sums = np.zeros(n)
    for i in range(n_in):
        for j in range(n):
            sums[j] += W[i, j]
    for j in range(n):
        if sums[j] > 0.0:
            sums[j] = total / sums[j]
        else:
            sums[j] = 1.0
    for i in range(n_in):
        for j in range(n):
            W[i, j] *= sums[j]


def normalize_columns_torch(weights: torch.Tensor, total: float) -> torch.Tensor:
    """:func:`normalize_columns` for a tensor (a new tensor; columns of zeros unchanged)."""
    sums = weights.sum(0, keepdim=True)
    return torch.where(sums > 0, weights * (total / sums.clamp_min(1e-300)), weights)
