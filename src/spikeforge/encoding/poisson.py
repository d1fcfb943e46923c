"""Poisson rate coding of images.

Each input unit fires as a Bernoulli process with probability ``rate_hz * dt`` per step, which is what
Brian's ``PoissonGroup`` does (at most one spike per unit and step). Diehl & Cook (2015) use
``rate_hz = pixel / 8 * intensity`` with intensity 2, i.e. ``pixel / 4`` Hz (0-63.75 Hz).

Two generators of the same process:

- :func:`poisson_raster` (torch, batched, any device): a dense ``[steps, batch, inputs]`` bool raster;
  :func:`bernoulli_spikes` draws one step of it (the PyTorch engines draw step by step).
- :func:`poisson_events` (numba): the same process drawn as geometric inter-spike gaps, so the cost is
  proportional to the number of spikes, not to steps x inputs; returns events sorted by step in CSR
  form ``(ptr, idx)``: the inputs that fire at step ``s`` are ``idx[ptr[s]:ptr[s+1]]``.
"""

from __future__ import annotations

import numpy as np
import torch

from ..jit import kernel


def image_rates_hz(pixels, rate_hz_per_level: float, intensity: float):
    """Firing rates for pixel values (0-255): ``pixel * rate_hz_per_level * intensity``."""
    return pixels * (rate_hz_per_level * intensity)


def spike_probability(rates_hz, dt_ms: float):
    """``P(spike)`` per step of a Bernoulli process of rate ``rates_hz``: ``rate * dt``, clipped to [0, 1]."""
    return (rates_hz * (dt_ms * 1e-3)).clamp(0.0, 1.0)


def bernoulli_spikes(
    p: torch.Tensor, generator: torch.Generator | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """One step of independent Bernoulli spikes with probabilities ``p`` (bool, shape of ``p``);
    the uniform draws have ``dtype`` (default ``p.dtype``) and come from ``generator``."""
    return torch.rand(p.shape, generator=generator, device=p.device, dtype=dtype or p.dtype) < p


def poisson_raster(
    rates_hz: torch.Tensor, n_steps: int, dt_ms: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Bernoulli raster ``[n_steps, *rates.shape]`` with ``P(spike) = rate * dt`` per step."""
    if n_steps < 0:
        raise ValueError(f"n_steps must be >= 0, got {n_steps}")
    p = spike_probability(rates_hz, dt_ms)
    u = torch.rand((n_steps, *p.shape), generator=generator, device=p.device, dtype=p.dtype)
    return u < p


@kernel
def poisson_events(rates_hz, n_steps, dt_ms, seed):
    """Spike events of independent Bernoulli processes, sorted by step (CSR ``ptr, idx``)."""
    np.random.seed(seed)
    n = rates_hz.shape[0]
    expected = 0.0
    for i in range(n):
        p = rates_hz[i] * dt_ms * 1e-3
        expected += min(p, 1.0) * n_steps
    cap = int(expected * 1.5) + 64
    ev_step = np.empty(cap, np.int32)
    ev_inp = np.empty(cap, np.int32)
    m = 0
    for i in range(n):
        p = rates_hz[i] * dt_ms * 1e-3
        if p <= 0.0:
            continue
        if p > 1.0:
            p = 1.0
        s = np.random.geometric(p) - 1
        while s < n_steps:
            if m == cap:
                cap *= 2
                a = np.empty(cap, np.int32)
                b = np.empty(cap, np.int32)
                a[:m] = ev_step[:m]
                b[:m] = ev_inp[:m]
                ev_step, ev_inp = a, b
            ev_step[m] = s
            ev_inp[m] = i
            m += 1
            s += np.random.geometric(p)
    # counting sort by step (stable: inputs in ascending order within a step)
    ptr = np.zeros(n_steps + 1, np.int32)
    for k in range(m):
        ptr[ev_step[k] + 1] += 1
    for s in range(n_steps):
        ptr[s + 1] += ptr[s]
    fill = ptr[:-1].copy()
    idx = np.empty(m, np.int32)
    for k in range(m):
        s = ev_step[k]
        idx[fill[s]] = ev_inp[k]
        fill[s] += 1
    return ptr, idx


def raster_to_events(raster: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR events ``(ptr, idx)`` from a dense bool raster ``[n_steps, n_inputs]``."""
    raster = np.asarray(raster, dtype=bool)
    if raster.ndim != 2:
        raise ValueError(f"raster must be 2-D [steps, inputs], got shape {raster.shape}")
    steps_, inputs = np.nonzero(raster)
    ptr = np.zeros(raster.shape[0] + 1, np.int32)
    np.add.at(ptr, steps_ + 1, 1)
    return np.cumsum(ptr).astype(np.int32), inputs.astype(np.int32)


def events_to_raster(ptr: np.ndarray, idx: np.ndarray, n_inputs: int) -> np.ndarray:
    """Dense bool raster ``[n_steps, n_inputs]`` from CSR events."""
    n_steps = len(ptr) - 1
    raster = np.zeros((n_steps, n_inputs), dtype=bool)
    counts = np.diff(ptr)
    raster[np.repeat(np.arange(n_steps), counts), idx] = True
    return raster
