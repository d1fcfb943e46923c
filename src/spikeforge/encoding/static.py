"""Encoders for static inputs (images) over ``num_steps`` time steps; batch-first output
``[B, T, ...]``.

* :func:`direct`: the input itself is the current at every step (snn-tha's MNIST encoding). The
  result is an ``expand``-ed view (no copy); networks that know the input is static should skip the
  time axis altogether (the LIF kernels accept a static input, see ``leaky_multistep(num_steps=)``).
* :func:`rate`: independent Bernoulli spikes with probability ``gain * x`` (clipped to [0, 1]) per
  step and element, drawn from an explicit generator (snnTorch ``spikegen.rate`` semantics).
"""

from __future__ import annotations

import torch

from ..config import ConfigError


def _check(x: torch.Tensor, num_steps: int) -> None:
    if num_steps < 1:
        raise ConfigError(f"num_steps must be >= 1, got {num_steps}")
    if x.dim() < 1:
        raise ConfigError("the input needs a batch dimension")


def direct(x: torch.Tensor, num_steps: int) -> torch.Tensor:
    """``[B, ...] -> [B, T, ...]``, the same values at every step (a view)."""
    _check(x, num_steps)
    return x.unsqueeze(1).expand(x.shape[0], num_steps, *x.shape[1:])


def rate(x: torch.Tensor, num_steps: int, gain: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Bernoulli/Poisson rate code: ``[B, ...] -> [B, T, ...]`` of 0/1 spikes, ``P = gain * x``."""
    _check(x, num_steps)
    p = (x.float() * gain).clamp(0.0, 1.0)
    p = p.unsqueeze(1).expand(x.shape[0], num_steps, *x.shape[1:])
    return torch.bernoulli(p, generator=generator)
