"""Conductance-based leaky integrate-and-fire neurons with an adaptive threshold (Diehl & Cook 2015).

Membrane equation (Diehl & Cook 2015, original Brian 1 code ``Diehl&Cook_spiking_MNIST.py``)::

    tau_m dv/dt = (v_rest - v) + g_e (E_exc - v) + g_i (E_inh - v)
    dg_e/dt = -g_e / tau_ge          dg_i/dt = -g_i / tau_gi          (g dimensionless)
    dtheta/dt = -theta / tau_theta

A neuron spikes when ``v > v_thresh - theta_offset + theta`` and it is outside its refractory
period; then ``v <- v_reset`` and, while learning, ``theta <- theta + theta_plus``.

Refractoriness is stated with two numbers because the originals disagree (reference §2.3, §2.9):
``refractory_ms`` is how long spikes are blocked after a spike and ``clamp_ms`` how long ``v`` is
held at ``v_reset``. The Brian 1 original blocks excitatory spikes for 5 ms and lets ``v`` integrate
(``refractory_ms=5, clamp_ms=0``, our default); the Brian 2 ports clamp ``v`` for 5 ms and block
spikes for 50 ms (``refractory_ms=50, clamp_ms=5``). The inhibitory group of the original has a
scalar reset, so Brian 1 clamps it: ``refractory_ms=2, clamp_ms=2``.

``integration`` selects the update: ``"euler"`` is forward Euler as in the original (Brian 1 picks
Euler for these non-linear equations), ``"exponential"`` integrates each step exactly for the
conductances held constant over the step.

The step function :func:`step` is pure and batched (any leading shape); the compiled engine uses the
same :func:`decay_factors` so that no constant is written twice.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
from pydantic import Field

from ..config import Params


class ConductanceLIFParams(Params):
    """Parameters of a conductance-based LIF population. Defaults: the excitatory group (Ae) of
    Diehl & Cook (2015), original code l.267-330."""

    v_rest_mv: float = -65.0
    v_reset_mv: float = -65.0
    v_thresh_mv: float = -52.0
    v_init_offset_mv: float = Field(-40.0, description="initial v = v_rest + this (original: -40 mV)")
    tau_m_ms: float = Field(100.0, gt=0)
    tau_ge_ms: float = Field(1.0, gt=0)
    tau_gi_ms: float = Field(2.0, gt=0)
    e_exc_mv: float = 0.0
    e_inh_mv: float = -100.0
    refractory_ms: float = Field(5.0, ge=0, description="spikes are blocked this long after a spike")
    clamp_ms: float = Field(0.0, ge=0, description="v is held at v_reset this long after a spike")
    adaptive: bool = Field(True, description="use the adaptive threshold theta")
    theta_init_mv: float = Field(20.0, description="theta at the start of training (original: 20 mV)")
    theta_offset_mv: float = Field(20.0, description="threshold = v_thresh - theta_offset + theta")
    theta_plus_mv: float = Field(0.05, ge=0)
    tau_theta_ms: float = Field(1e7, gt=0)
    integration: Literal["euler", "exponential"] = "euler"


class InhibitoryLIFParams(ConductanceLIFParams):
    """The inhibitory group (Ai) of Diehl & Cook (2015), original code l.267-330: its own class so
    that a config overriding one field keeps the other inhibitory defaults."""

    v_rest_mv: float = -60.0
    v_reset_mv: float = -45.0
    v_thresh_mv: float = -40.0
    tau_m_ms: float = Field(10.0, gt=0)
    e_inh_mv: float = -85.0
    refractory_ms: float = Field(2.0, ge=0)
    clamp_ms: float = Field(2.0, ge=0)
    adaptive: bool = False
    theta_init_mv: float = 0.0
    theta_offset_mv: float = 0.0
    theta_plus_mv: float = Field(0.0, ge=0)


def inhibitory_defaults() -> InhibitoryLIFParams:
    """The inhibitory group (Ai) of Diehl & Cook (2015)."""
    return InhibitoryLIFParams()


class DecayFactors(NamedTuple):
    """Per-step multipliers and step counts derived from parameters and dt."""

    ge: float
    gi: float
    theta: float
    dt_over_tau_m: float
    refractory_steps: int
    clamp_steps: int


def decay_factors(p: ConductanceLIFParams, dt_ms: float) -> DecayFactors:
    if p.integration == "euler":
        ge, gi, th = 1 - dt_ms / p.tau_ge_ms, 1 - dt_ms / p.tau_gi_ms, 1 - dt_ms / p.tau_theta_ms
    else:
        ge, gi, th = (math.exp(-dt_ms / t) for t in (p.tau_ge_ms, p.tau_gi_ms, p.tau_theta_ms))
    return DecayFactors(ge, gi, th, dt_ms / p.tau_m_ms, steps(p.refractory_ms, dt_ms), steps(p.clamp_ms, dt_ms))


def steps(duration_ms: float, dt_ms: float) -> int:
    """Number of whole steps in a duration (rounded to the nearest step)."""
    return int(round(duration_ms / dt_ms))


class ConductanceLIFState(NamedTuple):
    v: torch.Tensor
    ge: torch.Tensor
    gi: torch.Tensor
    theta: torch.Tensor
    since_spike: torch.Tensor  # steps since the last spike (large at start)


def initial_state(p: ConductanceLIFParams, shape, *, dtype=torch.float64, device=None) -> ConductanceLIFState:
    kw = dict(dtype=dtype, device=device)
    return ConductanceLIFState(
        v=torch.full(shape, p.v_rest_mv + p.v_init_offset_mv, **kw),
        ge=torch.zeros(shape, **kw),
        gi=torch.zeros(shape, **kw),
        theta=torch.full(shape, p.theta_init_mv if p.adaptive else 0.0, **kw),
        since_spike=torch.full(shape, 1 << 30, dtype=torch.int64, device=device),
    )


def membrane_update(v, ge, gi, p: ConductanceLIFParams, f: DecayFactors):
    """One step of the membrane equation (no threshold), batched."""
    if p.integration == "euler":
        return v + f.dt_over_tau_m * ((p.v_rest_mv - v) + ge * (p.e_exc_mv - v) + gi * (p.e_inh_mv - v))
    g_tot = 1.0 + ge + gi
    v_inf = (p.v_rest_mv + ge * p.e_exc_mv + gi * p.e_inh_mv) / g_tot
    return v_inf + (v - v_inf) * torch.exp(-f.dt_over_tau_m * g_tot)


def step(state: ConductanceLIFState, p: ConductanceLIFParams, f: DecayFactors, *, learning: bool):
    """Advance one step: integrate, decay conductances (and theta while learning), threshold, reset.

    With ``learning=False`` theta is a frozen parameter, as in the original's test mode.

    Synaptic input is added to ``ge``/``gi`` by the caller *after* this step (Brian's schedule:
    state update, thresholds, synapses, resets), so it acts from the next step on.
    Returns ``(new_state, spikes)`` with ``spikes`` a bool tensor.
    """
    since = state.since_spike + 1  # steps since the last spike, counting this one
    v = membrane_update(state.v, state.ge, state.gi, p, f)
    v = torch.where(since < f.clamp_steps, torch.full_like(v, p.v_reset_mv), v)
    ge = state.ge * f.ge
    gi = state.gi * f.gi
    theta = state.theta * f.theta if (p.adaptive and learning) else state.theta
    thresh = p.v_thresh_mv - p.theta_offset_mv + theta if p.adaptive else torch.full_like(v, p.v_thresh_mv)
    spikes = (v > thresh) & (since >= f.refractory_steps)
    v = torch.where(spikes, torch.full_like(v, p.v_reset_mv), v)
    if p.adaptive and learning:
        theta = theta + p.theta_plus_mv * spikes.to(theta.dtype)
    since = torch.where(spikes, torch.zeros_like(since), since)
    return ConductanceLIFState(v, ge, gi, theta, since), spikes
