"""Where forward Euler of the conductance LIF is unstable, and the substeps that keep it stable.

One Euler step of ``tau_m dv/dt = (v_rest - v) + g_e (E_exc - v) + g_i (E_inh - v)`` maps
``v - v_inf`` to ``(1 - k) (v - v_inf)`` with the Euler factor ``k = dt / tau_m * (1 + g_e + g_i)``
(``v_inf`` the equilibrium for the step's conductances). For ``k < 1`` v approaches ``v_inf``
monotonically; for ``1 <= k < 2`` it overshoots and oscillates but still converges; for ``k >= 2``
every step amplifies the distance: the membrane swings past any threshold and a Diehl & Cook network
ends with every neuron firing at the refractory limit (issue 10: at dt 0.5 ms and tau_m 100 ms,
``g_i >= 399``, which 24 coincident inhibitory spikes of 17 reach).

``integration = "euler_substep"`` keeps the Euler update on every neuron-step with
``k < euler_factor_bound`` (bit for bit) and splits the others into the fewest ``n`` equal Euler
substeps of ``dt / n`` whose factor ``k / n`` is below the bound, ``n = floor(k / bound) + 1``; the
conductances take the same substeps (``g <- g (1 - dt / (n tau_g))`` each), so the substeps are
forward Euler of the whole system at the finer step. The default bound is 2, Euler's own stability
limit, so that only the steps where forward Euler diverges change. Measured (docs/benchmarks.md):
at N = 400 the released settings reach ``k >= 1`` a few times per example and ``k >= 2`` first at
training example 455 (28 coincident inhibitory spikes), so no stable bound keeps N = 400
identical to ``"euler"`` over a full run; bound 2 keeps every step where Euler is stable unchanged.
A bound of 1 would also forbid the overshoot past ``v_inf`` (``1 <= k < 2``).

Under ``integration = "euler"`` (the released code) each neuron-step with ``k >= 2`` is counted and
the first is kept (step, neuron, g_e, g_i, k), for the engines to report (warning or error).

Counters live in a float64 vector (:data:`STATS_FIELDS`), updated by the compiled updates
(``record_*_c``) and by the tensor form (:func:`integrate_torch`); :func:`summary` reads it.
"""

from __future__ import annotations

import numpy as np
import torch

from ..jit import kernel

UNSTABLE_FACTOR = 2.0  # forward Euler diverges for k >= 2

STATS_FIELDS = (
    "substep_neuron_steps",
    "unstable_neuron_steps",
    "max_substeps",
    "first_step",
    "first_neuron",
    "first_g_e",
    "first_g_i",
    "first_factor",
    "first_batch",
)


class NumericalInstabilityError(RuntimeError):
    """Forward Euler diverged (``integration = "euler"`` with ``on_unstable = "error"``)."""


class NumericalInstabilityWarning(UserWarning):
    """Forward Euler diverged (``integration = "euler"``, ``on_unstable = "warn"``)."""


def new_stats() -> np.ndarray:
    s = np.zeros(len(STATS_FIELDS))
    s[3] = -1.0  # no unstable step yet
    return s


def over_factor(p) -> float:
    """The factor at which a neuron-step leaves the plain update: the substep bound
    (``euler_substep``), 2 (``euler``: counted as unstable), never (``exponential``)."""
    if p.integration == "euler_substep":
        return float(p.euler_factor_bound)
    return UNSTABLE_FACTOR if p.integration == "euler" else float("inf")


def summary(stats: np.ndarray) -> dict:
    """The counters as a dict; ``first_unstable`` is None until a step with ``k >= 2``."""
    out: dict = {
        "substep_neuron_steps": int(stats[0]),
        "unstable_neuron_steps": int(stats[1]),
        "max_substeps": int(stats[2]),
        "first_unstable": None,
    }
    if stats[3] >= 0:
        out["first_unstable"] = {
            "step": int(stats[3]),
            "neuron": int(stats[4]),
            "g_e": float(stats[5]),
            "g_i": float(stats[6]),
            "factor": float(stats[7]),
            "batch": int(stats[8]),
        }
    return out


def message(layer: str, first: dict, example: str, step_in_example: int) -> str:
    """The instability warning / error, naming where it happened and the fix."""
    return (
        f"numerical instability: forward Euler (integration = 'euler') diverges at {example}, step "
        f"{step_in_example} of the presentation (global step {first['step']}), {layer} neuron "
        f"{first['neuron']}: g_e = {first['g_e']:.6g}, g_i = {first['g_i']:.6g}, "
        f"dt/tau_m * (1 + g_e + g_i) = {first['factor']:.4g} >= 2, so the membrane overshoots without "
        f"bound and the network ends firing at the refractory limit. Fix: use the default "
        f"integration 'euler_substep' (the default profile; --set model.{layer}.integration=euler_substep) "
        f"or 'exponential'; set model.{layer}.on_unstable = 'error' to stop at the first such step"
    )


# ---------------------------------------------------------------------------------------------
# compiled forms
# ---------------------------------------------------------------------------------------------


@kernel(inline="always")
def euler_substeps_c(v, g_e, g_i, n, v_rest, e_exc, e_inh, dtm, dge, dgi):
    """``n`` forward Euler substeps of ``dt / n`` of v and both conductances."""
    h = dtm / n
    c_e = 1.0 - dge / n
    c_i = 1.0 - dgi / n
    for _ in range(n):
        v = v + h * ((v_rest - v) + g_e * (e_exc - v) + g_i * (e_inh - v))
        g_e = g_e * c_e
        g_i = g_i * c_i
    return v, g_e, g_i


@kernel(inline="always")
def record_substeps_c(stats, n):
    stats[0] += 1.0
    if n > stats[2]:
        stats[2] = n


@kernel(inline="always")
def record_unstable_c(stats, t, j, g_e, g_i, k):
    stats[1] += 1.0
    if stats[3] < 0:
        stats[3] = t
        stats[4] = j
        stats[5] = g_e
        stats[6] = g_i
        stats[7] = k
        stats[8] = 0


# ---------------------------------------------------------------------------------------------
# tensor form
# ---------------------------------------------------------------------------------------------


def integrate_torch(v, ge, gi, p, f, stats: np.ndarray | None = None, t: int = 0):
    """One Euler step of v, g_e, g_i (``euler`` or ``euler_substep``), batched; returns the three
    new tensors. ``stats`` (a :func:`new_stats` vector) counts substeps and unstable steps."""
    k = f.dt_over_tau_m * ((1.0 + ge) + gi)
    v_new = v + f.dt_over_tau_m * ((p.v_rest_mv - v) + ge * (p.e_exc_mv - v) + gi * (p.e_inh_mv - v))
    ge_new, gi_new = ge * f.ge, gi * f.gi
    over = k >= over_factor(p)
    if not bool(over.any()):
        return v_new, ge_new, gi_new
    if p.integration == "euler":
        if stats is not None:
            stats[1] += int(over.sum())
            if stats[3] < 0:
                flat = int(torch.nonzero(over.reshape(-1))[0])
                n_last = over.shape[-1] if over.dim() else 1
                b, j = divmod(flat, n_last)
                at = (ge.reshape(-1)[flat], gi.reshape(-1)[flat], k.reshape(-1)[flat])
                stats[3:9] = (t, j, *(float(x) for x in at), b)
        return v_new, ge_new, gi_new
    n = torch.where(over, torch.floor(k / p.euler_factor_bound) + 1.0, torch.ones_like(k))
    h = f.dt_over_tau_m / n
    c_e = 1.0 - f.dt_over_tau_ge / n
    c_i = 1.0 - f.dt_over_tau_gi / n
    vs, es, is_ = v, ge, gi
    n_max = int(n.max())
    for m in range(n_max):
        live = over & (n > m)
        v_next = vs + h * ((p.v_rest_mv - vs) + es * (p.e_exc_mv - vs) + is_ * (p.e_inh_mv - vs))
        vs = torch.where(live, v_next, vs)
        es = torch.where(live, es * c_e, es)
        is_ = torch.where(live, is_ * c_i, is_)
    if stats is not None:
        stats[0] += int(over.sum())
        stats[2] = max(stats[2], n_max)
    return torch.where(over, vs, v_new), torch.where(over, es, ge_new), torch.where(over, is_, gi_new)
