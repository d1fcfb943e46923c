"""Current-based leaky integrate-and-fire neuron with leak, resistance R, dt and tau.

The neuron of the talk "Building and Training Spiking Neural Networks"::

    tau_m dv/dt = -(v - v_rest) + R * I(t)

integrated exactly over a step with the input current held constant:
``v <- v_inf + (v - v_inf) * exp(-dt / tau_m)`` with ``v_inf = v_rest + R I``
(or forward Euler with ``integration="euler"``). A spike is emitted when ``v >= v_thresh``; then
``v <- v_reset`` and the neuron is refractory (held at ``v_reset``) for ``refractory_ms``.

The talk's optional adaptive threshold ``thr <- thr - alpha * thr + beta * spikes`` (per step,
:func:`spikeforge.neurons.adaptive_threshold.talk_threshold`) is enabled by ``adapt_alpha``/``adapt_beta``
> 0; the threshold used is ``v_thresh + thr``.

Both forms live here: :func:`step` (torch, batched) and :func:`step_c` (the scalar step compiled
loops inline, reading :func:`compiled_constants`).
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
from pydantic import Field

from ..config import Params
from ..jit import kernel
from .adaptive_threshold import talk_threshold


class CurrentLIFParams(Params):
    """Defaults are textbook values in mV, ms, MOhm and nA (v_rest -65, threshold -50, tau 10 ms,
    R 10 MOhm), as in the talk's LIF example."""

    v_rest_mv: float = -65.0
    v_reset_mv: float = -65.0
    v_thresh_mv: float = -50.0
    tau_m_ms: float = Field(10.0, gt=0)
    r_mohm: float = Field(10.0, gt=0)
    refractory_ms: float = Field(2.0, ge=0)
    adapt_alpha: float = Field(0.0, ge=0, le=1, description="adaptive threshold decay per step")
    adapt_beta_mv: float = Field(0.0, ge=0, description="adaptive threshold increment per spike")
    integration: Literal["exact", "euler"] = "exact"


class CurrentLIFState(NamedTuple):
    v: torch.Tensor
    refractory_left: torch.Tensor  # steps of refractoriness left
    thr: torch.Tensor  # adaptive threshold increment (mV)


def initial_state(p: CurrentLIFParams, shape, *, dtype=torch.float32, device=None) -> CurrentLIFState:
    return CurrentLIFState(
        v=torch.full(shape, p.v_rest_mv, dtype=dtype, device=device),
        refractory_left=torch.zeros(shape, dtype=torch.int64, device=device),
        thr=torch.zeros(shape, dtype=dtype, device=device),
    )


def step(state: CurrentLIFState, current_na: torch.Tensor, p: CurrentLIFParams, dt_ms: float):
    """One step with input current ``current_na`` (nA); returns ``(new_state, spikes)``."""
    v_inf = p.v_rest_mv + p.r_mohm * current_na
    if p.integration == "exact":
        v = v_inf + (state.v - v_inf) * math.exp(-dt_ms / p.tau_m_ms)
    else:
        v = state.v + dt_ms / p.tau_m_ms * (v_inf - state.v)
    refractory = state.refractory_left > 0
    v = torch.where(refractory, torch.full_like(v, p.v_reset_mv), v)
    spikes = (v >= p.v_thresh_mv + state.thr) & ~refractory
    v = torch.where(spikes, torch.full_like(v, p.v_reset_mv), v)
    n_ref = int(round(p.refractory_ms / dt_ms))
    left = torch.where(spikes, torch.full_like(state.refractory_left, n_ref), (state.refractory_left - 1).clamp_min(0))
    thr = talk_threshold(state.thr, spikes.to(v.dtype), p.adapt_alpha, p.adapt_beta_mv)
    return CurrentLIFState(v, left, thr), spikes


def compiled_constants(p: CurrentLIFParams, dt_ms: float) -> tuple:
    """``(v_rest, v_reset, v_thresh, R, decay, refractory_steps, alpha, beta)`` as plain numbers, for
    :func:`step_c` (``decay = exp(-dt/tau)``, or ``1 - dt/tau`` for Euler)."""
    exact = p.integration == "exact"
    decay = math.exp(-dt_ms / p.tau_m_ms) if exact else 1.0 - dt_ms / p.tau_m_ms
    return (
        p.v_rest_mv,
        p.v_reset_mv,
        p.v_thresh_mv,
        p.r_mohm,
        decay,
        int(round(p.refractory_ms / dt_ms)),
        p.adapt_alpha,
        p.adapt_beta_mv,
    )


@kernel(inline="always")
def step_c(v_old, left, cur, thr, v_rest, v_reset, v_thresh, r, decay, n_ref):
    """One scalar step (compiled): returns ``(v, refractory steps left, spiked)``. The membrane
    relaxes towards ``v_rest + R I`` by ``decay``; a refractory neuron is held at ``v_reset``."""
    v_inf = v_rest + r * cur
    v = v_inf + (v_old - v_inf) * decay
    refr = left > 0
    if refr:
        v = v_reset
    s = (v >= v_thresh + thr) and not refr
    if s:
        v = v_reset
        left = n_ref
    elif left > 0:
        left -= 1
    return v, left, s
