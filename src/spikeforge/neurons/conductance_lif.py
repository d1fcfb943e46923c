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
conductances held constant over the step, and ``"euler_substep"`` (the default) is forward Euler
made stable where it is not (:mod:`.conductance_stability`): bit for bit ``"euler"`` on every
neuron-step whose Euler factor ``k = dt / tau_m * (1 + g_e + g_i)`` is below
``euler_factor_bound``; the rare neuron-steps at or above it are split into the fewest equal Euler
substeps that bring each substep's factor under the bound. Under ``"euler"`` a neuron-step with
``k >= 2`` (where forward Euler diverges) is counted and reported (``on_unstable``).

Both forms of the equations live here: :func:`step` is pure and batched (torch, any leading
shape); ``integrate_c``, ``update_layer_c`` and ``update_active_c`` are the scalar and per-layer
updates that the compiled engine's loop calls (numba, inlined), reading the parameter vector
:func:`compiled_params`. Both derive their constants from :func:`decay_factors`, so no constant is
written twice. Theta's decay and increment are :mod:`spikeforge.neurons.adaptive_threshold`.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import numpy as np
import torch
from pydantic import Field

from ..config import Params
from ..jit import kernel
from .adaptive_threshold import theta_decay, theta_decay_c, theta_increment, theta_increment_c
from .conductance_stability import (
    euler_substeps_c,
    integrate_torch,
    over_factor,
    record_substeps_c,
    record_unstable_c,
)


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
    integration: Literal["euler", "euler_substep", "exponential"] = Field(
        "euler_substep", description="membrane update (module docstring); 'euler' is the original's"
    )
    euler_factor_bound: float = Field(
        2.0,
        gt=0,
        le=2,
        description="euler_substep: substeps where dt/tau_m*(1+g_e+g_i) reaches this (2: Euler's stability limit)",
    )
    on_unstable: Literal["warn", "error"] = Field(
        "warn", description="integration 'euler': what a step with dt/tau_m*(1+g_e+g_i) >= 2 does"
    )


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
    dt_over_tau_ge: float = 0.0  # the Euler substeps decay g by 1 - dt / (n tau_g)
    dt_over_tau_gi: float = 0.0


def decay_factors(p: ConductanceLIFParams, dt_ms: float) -> DecayFactors:
    if p.integration != "exponential":  # euler and euler_substep
        ge, gi, th = 1 - dt_ms / p.tau_ge_ms, 1 - dt_ms / p.tau_gi_ms, 1 - dt_ms / p.tau_theta_ms
    else:
        ge, gi, th = (math.exp(-dt_ms / t) for t in (p.tau_ge_ms, p.tau_gi_ms, p.tau_theta_ms))
    return DecayFactors(
        ge,
        gi,
        th,
        dt_ms / p.tau_m_ms,
        steps(p.refractory_ms, dt_ms),
        steps(p.clamp_ms, dt_ms),
        dt_ms / p.tau_ge_ms,
        dt_ms / p.tau_gi_ms,
    )


def steps(duration_ms: float, dt_ms: float) -> int:
    """Number of whole steps in a duration (rounded to the nearest step)."""
    return int(round(duration_ms / dt_ms))


class ConductanceLIFState(NamedTuple):
    v: torch.Tensor
    ge: torch.Tensor
    gi: torch.Tensor
    theta: torch.Tensor | None  # None where the engine holds theta itself (shared over a batch)
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


def membrane_update(v, ge, gi, p: ConductanceLIFParams, f: DecayFactors, stats=None, t: int = 0):
    """One step of the membrane equation and the conductances (no threshold), batched: returns
    ``(v, g_e, g_i)`` after the step. ``stats``: counters of :mod:`.conductance_stability`."""
    if p.integration != "exponential":
        return integrate_torch(v, ge, gi, p, f, stats, t)
    g_tot = 1.0 + ge + gi
    v_inf = (p.v_rest_mv + ge * p.e_exc_mv + gi * p.e_inh_mv) / g_tot
    return v_inf + (v - v_inf) * torch.exp(-f.dt_over_tau_m * g_tot), ge * f.ge, gi * f.gi


def step(state: ConductanceLIFState, p: ConductanceLIFParams, f: DecayFactors, *, learning: bool, stats=None, t=0):
    """Advance one step: integrate, decay conductances (and theta while learning), threshold, reset.

    With ``learning=False`` theta is a frozen parameter, as in the original's test mode.

    Synaptic input is added to ``ge``/``gi`` by the caller *after* this step (Brian's schedule:
    state update, thresholds, synapses, resets), so it acts from the next step on.
    ``stats`` (optional, :func:`.conductance_stability.new_stats`) counts substeps and unstable
    steps, ``t`` is the step they are recorded at.
    Returns ``(new_state, spikes)`` with ``spikes`` a bool tensor.
    """
    if state.theta is None:
        raise ValueError("conductance_lif.step needs theta in the state (pass zeros for a fixed threshold)")
    since = state.since_spike + 1  # steps since the last spike, counting this one
    v, ge, gi = membrane_update(state.v, state.ge, state.gi, p, f, stats, t)
    v = torch.where(since < f.clamp_steps, torch.full_like(v, p.v_reset_mv), v)
    theta = theta_decay(state.theta, f.theta) if (p.adaptive and learning) else state.theta
    thresh = p.v_thresh_mv - p.theta_offset_mv + theta if p.adaptive else torch.full_like(v, p.v_thresh_mv)
    spikes = (v > thresh) & (since >= f.refractory_steps)
    v = torch.where(spikes, torch.full_like(v, p.v_reset_mv), v)
    if p.adaptive and learning:
        theta = theta_increment(theta, spikes.to(theta.dtype), p.theta_plus_mv)
    since = torch.where(spikes, torch.zeros_like(since), since)
    return ConductanceLIFState(v, ge, gi, theta, since), spikes


# ---------------------------------------------------------------------------------------------
# compiled forms (numba), called by the compiled engine's loop
# ---------------------------------------------------------------------------------------------

# layout of the parameter vector the compiled updates read
COMPILED_PARAMS = (
    "v_rest",
    "v_reset",
    "v_thresh_eff",
    "e_exc",
    "e_inh",
    "dt_over_tau",
    "f_ge",
    "f_gi",
    "f_theta",
    "theta_plus",
    "refractory_steps",
    "clamp_steps",
    "adaptive",
    "exponential",
    "over_factor",
    "substep",
    "dt_over_tau_ge",
    "dt_over_tau_gi",
    "substep_bound",
)


def compiled_params(p: ConductanceLIFParams, dt_ms: float) -> np.ndarray:
    """The parameters in the order the compiled updates read them (see ``COMPILED_PARAMS``)."""
    f = decay_factors(p, dt_ms)
    thresh = p.v_thresh_mv - p.theta_offset_mv if p.adaptive else p.v_thresh_mv
    return np.array(
        [
            p.v_rest_mv,
            p.v_reset_mv,
            thresh,
            p.e_exc_mv,
            p.e_inh_mv,
            f.dt_over_tau_m,
            f.ge,
            f.gi,
            f.theta,
            p.theta_plus_mv,
            f.refractory_steps,
            f.clamp_steps,
            float(p.adaptive),
            float(p.integration == "exponential"),
            over_factor(p),
            float(p.integration == "euler_substep"),
            f.dt_over_tau_ge,
            f.dt_over_tau_gi,
            p.euler_factor_bound,
        ],
        dtype=np.float64,
    )


@kernel(inline="always")
def integrate_c(v, g_e, g_i, v_rest, e_exc, e_inh, dtm, exponential):
    """One step of the membrane equation (forward Euler, or exact for constant conductances)."""
    if exponential:
        gt = 1.0 + g_e + g_i
        v_inf = (v_rest + g_e * e_exc + g_i * e_inh) / gt
        return v_inf + (v - v_inf) * np.exp(-dtm * gt)
    return v + dtm * ((v_rest - v) + g_e * (e_exc - v) + g_i * (e_inh - v))


@kernel(inline="always")
def _unpack_c(prm):
    """The compiled parameter vector as named scalars (the order of ``COMPILED_PARAMS``)."""
    return (
        prm[0],
        prm[1],
        prm[2],
        prm[3],
        prm[4],
        prm[5],
        prm[6],
        prm[7],
        int(prm[10]),
        int(prm[11]),
        prm[13] != 0.0,
        prm[14],
        prm[15] != 0.0,
        prm[16],
        prm[17],
        prm[18],
    )


@kernel(inline="always")
def off_bound_step_c(vj, g_e, g_i, k, t, j, prm, stats):
    """The update of a neuron-step whose Euler factor ``k`` reached ``over_factor``: Euler substeps
    (``euler_substep``) or the plain Euler step, counted as unstable (``euler``)."""
    v_rest, _, _, e_exc, e_inh, dtm, f_ge, f_gi, _, _, _, _, substep, dge, dgi, bound = _unpack_c(prm)
    if substep:
        n_sub = int(k / bound) + 1
        record_substeps_c(stats, n_sub)
        return euler_substeps_c(vj, g_e, g_i, n_sub, v_rest, e_exc, e_inh, dtm, dge, dgi)
    record_unstable_c(stats, t, j, g_e, g_i, k)
    return integrate_c(vj, g_e, g_i, v_rest, e_exc, e_inh, dtm, False), g_e * f_ge, g_i * f_gi


@kernel(inline="always")
def lif_tail_c(j, v_new, g_e, g_i, v, ge, gi, theta, since, tail):
    """Store neuron ``j``'s integrated v and decayed conductances, decay theta, threshold, reset
    (the spike is ``since[j] == 0``; returns whether it fired). ``tail``: the scalars ``(v_reset,
    v_th, refr, clamp, f_theta, use_theta)``, as values (read from ``prm`` inside the loop they would
    not vectorise)."""
    v_reset, v_th, refr, clamp, f_theta, use_theta = tail
    s = since[j] + 1
    v_new = v_reset if s < clamp else v_new
    ge[j] = g_e if g_e > 1e-100 else 0.0
    gi[j] = g_i if g_i > 1e-100 else 0.0
    th = theta_decay_c(theta[j], f_theta)
    theta[j] = th
    fire = (v_new > v_th + use_theta * th) & (s >= refr)
    v[j] = v_reset if fire else v_new
    since[j] = 0 if fire else s
    return fire


@kernel
def euler_pass_c(v, ge, gi, theta, since, v_rest, e_exc, e_inh, dtm, f_ge, f_gi, exponential, tail):
    """The plain update of a whole layer, without branches so that it vectorises (a function of its
    own: inlined into :func:`update_layer_c` beside the scalar loop it ran twice as slowly).
    Returns the number of spikes."""
    n_fire = 0
    for j in range(v.shape[0]):
        v_new = integrate_c(v[j], ge[j], gi[j], v_rest, e_exc, e_inh, dtm, exponential)
        n_fire += lif_tail_c(j, v_new, ge[j] * f_ge, gi[j] * f_gi, v, ge, gi, theta, since, tail)
    return n_fire


@kernel
def update_layer_c(v, ge, gi, theta, since, prm, learning, spk, t, stats):
    """Integrate, threshold and reset one layer; writes spiking indices to ``spk``, returns count.

    The update pass (:func:`euler_pass_c`) has no data-dependent branches (selects instead of ifs),
    so the compiler vectorises it and counts the spikes; only in the (rare) steps with spikes a second
    pass collects them, the neurons whose step count since their last spike is 0 (no separate flag
    array: its byte-wide stores cost a fifth of the step). Conductances that decay below 1e-100 are
    set to 0: their effect on v is far below rounding, and without this they end in the subnormal
    range, where every step becomes about 15 times slower (Euler decay by 0.75 gets stuck at the
    smallest subnormal).

    A counting pre-pass (vectorised) finds whether any neuron's Euler factor reaches
    ``over_factor``; only then (rarely) the layer is updated by a scalar loop that sends those
    neurons through :func:`off_bound_step_c` (counted in ``stats``, ``t`` the global step)."""
    v_rest, v_reset, v_th, e_exc, e_inh, dtm, f_ge, f_gi, refr, clamp, exponential, over = _unpack_c(prm)[:12]
    theta_plus = prm[9]
    adaptive = prm[12] != 0.0
    f_theta = prm[8] if (adaptive and learning) else 1.0
    tail = (v_reset, v_th, refr, clamp, f_theta, 1.0 if adaptive else 0.0)
    n_neurons = v.shape[0]
    n_over = 0
    for j in range(n_neurons):
        n_over += dtm * ((1.0 + ge[j]) + gi[j]) >= over
    n_fire = 0
    if n_over == 0:
        n_fire = euler_pass_c(v, ge, gi, theta, since, v_rest, e_exc, e_inh, dtm, f_ge, f_gi, exponential, tail)
    else:
        for j in range(n_neurons):
            g_e = ge[j]
            g_i = gi[j]
            k = dtm * ((1.0 + g_e) + g_i)
            if k >= over:
                v_new, g_e, g_i = off_bound_step_c(v[j], g_e, g_i, k, t, j, prm, stats)
            else:
                v_new = integrate_c(v[j], g_e, g_i, v_rest, e_exc, e_inh, dtm, exponential)
                g_e = g_e * f_ge
                g_i = g_i * f_gi
            n_fire += lif_tail_c(j, v_new, g_e, g_i, v, ge, gi, theta, since, tail)
    n = 0
    for j in range(n_neurons if n_fire > 0 else 0):
        if since[j] == 0:
            spk[n] = j
            n += 1
            if adaptive and learning:
                theta[j] = theta_increment_c(theta[j], 1.0, theta_plus)
    return n


@kernel
def update_active_c(v, ge, gi, since, prm, active, is_active, spk, t, stats):
    """The inhibitory layer's update, restricted to neurons that are not at rest.

    A neuron is at rest when its conductances are 0, it is past its refractory and clamp periods and
    one more update would not change ``v`` (v has reached its floating-point fixed point next to
    v_rest). Updating it would change nothing, so it is skipped until its excitatory partner drives
    it again: bitwise the same result as updating every neuron. ``active[0]`` is the count.
    Neuron-steps whose Euler factor reaches ``over_factor`` go through :func:`off_bound_step_c`."""
    v_rest, v_reset, v_th, e_exc, e_inh, dtm, f_ge, f_gi, refr, clamp, exponential, over = _unpack_c(prm)[:12]
    quiet = max(refr, clamp)
    n = 0
    kept = 0
    for q in range(active[0]):
        j = active[q + 1]
        s = since[j] + 1
        g_e = ge[j]
        g_i = gi[j]
        vj = v[j]
        k = dtm * ((1.0 + g_e) + g_i)
        if k >= over:
            v_new, g_e, g_i = off_bound_step_c(vj, g_e, g_i, k, t, j, prm, stats)
        else:
            v_new = integrate_c(vj, g_e, g_i, v_rest, e_exc, e_inh, dtm, exponential)
            g_e *= f_ge
            g_i *= f_gi
        if s < clamp:
            v_new = v_reset
        ge[j] = g_e if g_e > 1e-100 else 0.0
        gi[j] = g_i if g_i > 1e-100 else 0.0
        if v_new > v_th and s >= refr:
            v_new = v_reset
            s = 0
            spk[n] = j
            n += 1
        rest = ge[j] == 0.0 and gi[j] == 0.0 and s >= quiet and v_new == vj
        v[j] = v_new
        since[j] = s
        if rest:
            is_active[j] = False
        else:
            active[kept + 1] = j
            kept += 1
    active[0] = kept
    return n


@kernel(inline="always")
def activate_c(j, active, is_active):
    if not is_active[j]:
        is_active[j] = True
        active[active[0] + 1] = j
        active[0] += 1
