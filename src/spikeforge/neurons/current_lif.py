"""Current-based leaky integrate-and-fire neuron with leak, resistance R, dt and tau.

The neuron of the talk "Building and Training Spiking Neural Networks"::

    tau_m dv/dt = -(v - v_rest) + R * I(t)

integrated exactly over a step with the input current held constant:
``v <- v_inf + (v - v_inf) * exp(-dt / tau_m)`` with ``v_inf = v_rest + R I``
(or forward Euler with ``integration="euler"``). A spike is emitted when ``v >= v_thresh``; then
``v <- v_reset`` and the neuron is refractory (held at ``v_reset``) for ``refractory_ms``.

The talk's optional adaptive threshold ``thr <- thr - alpha * thr + beta * spikes`` (per step) is
enabled by ``adapt_alpha``/``adapt_beta`` > 0; the threshold used is ``v_thresh + thr``.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
from pydantic import Field

from ..config import Params


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
    thr = state.thr - p.adapt_alpha * state.thr + p.adapt_beta_mv * spikes.to(v.dtype)
    return CurrentLIFState(v, left, thr), spikes
