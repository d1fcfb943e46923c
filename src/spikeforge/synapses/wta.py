"""Wiring matrices of a winner-take-all circuit, and the equivalent k-winners rule.

The circuit of the talk "Building and Training Spiking Neural Networks" (and of Diehl & Cook 2015):
``N`` excitatory neurons are wired **one-to-one** to ``N`` inhibitory neurons (an identity matrix
``W_ei = w_ei * I``), and each inhibitory neuron is wired **back to every other** excitatory neuron
(a hollow matrix ``W_ie = w_ie * (1 - I)``: all ones except the diagonal). An excitatory spike
makes its partner fire, which removes voltage from all the other excitatory neurons; a neuron never
inhibits itself.

Matrices are ``[pre, post]`` (a row per presynaptic neuron), so the current into the
postsynaptic population is ``spikes @ W``. :func:`hollow_current` computes ``spikes @ (w * (1 - I))``
as ``w * (sum(spikes) - spikes)`` in O(N) per row without building the N x N matrix.

:func:`k_winners` is the rule the circuit approximates when inhibition is strong and instantaneous:
among the neurons that reach threshold in a step, only the ``k`` with the largest drive fire.
"""

from __future__ import annotations

import torch

from .projections import all_but_self


def identity_matrix(n: int, weight: float = 1.0, *, dtype=torch.float32) -> torch.Tensor:
    """``[n, n]`` one-to-one wiring: ``weight`` on the diagonal, 0 elsewhere."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return torch.eye(n, dtype=dtype) * weight


def hollow_matrix(n: int, weight: float = 1.0, *, dtype=torch.float32) -> torch.Tensor:
    """``[n, n]`` one-to-all-others wiring: ``weight`` everywhere except a zero diagonal."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return (torch.ones(n, n, dtype=dtype) - torch.eye(n, dtype=dtype)) * weight


def hollow_current(spikes: torch.Tensor, weight: float) -> torch.Tensor:
    """``spikes @ hollow_matrix(N, weight)`` for ``spikes`` of shape ``[..., N]``, in O(N)
    (the all-but-self projection of :mod:`spikeforge.synapses.projections`; bool spikes allowed)."""
    s = spikes.to(torch.float32) if not spikes.is_floating_point() else spikes
    return all_but_self(s, weight)


def k_winners(candidates: torch.Tensor, drive: torch.Tensor, k: int) -> torch.Tensor:
    """Keep at most ``k`` spikes per row: of the ``candidates`` (bool ``[..., N]``), the ones with
    the largest ``drive`` (ties broken by :func:`torch.topk`). Returns a bool tensor like
    ``candidates``."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n = candidates.shape[-1]
    if k >= n:
        return candidates.clone()
    score = torch.where(candidates, drive.to(torch.float32), torch.full_like(drive, float("-inf"), dtype=torch.float32))
    top = score.topk(k, dim=-1).indices
    keep = torch.zeros_like(candidates)
    keep.scatter_(-1, top, True)
    return keep & candidates
