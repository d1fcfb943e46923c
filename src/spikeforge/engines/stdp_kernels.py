"""Compiled weight-update formulas of the STDP rules, dispatched on the rule code.

The compiled engine's loop calls :func:`on_pre` when a presynaptic spike arrives at a synapse and
:func:`on_post` when the postsynaptic neuron fires, passing the traces already decayed to the current
step. A new rule is a new branch here plus its code in ``plasticity.stdp.RULE_CODES``; the loop
itself does not change. ``prm`` is ``STDPParams.kernel_params()``:
``[nu_pre, nu_post, pre_sign, w_min, w_max, p5, p6, p7]``.

Contract: ``on_pre`` must leave ``w`` unchanged when ``x_post1`` is 0 (every Diehl & Cook rule's
pre-spike term is proportional to the post trace); the engine skips the call in that case.
"""

from __future__ import annotations

from numba import njit

TRIPLET = 0


@njit(cache=True, inline="always")
def clip(w, w_min, w_max):
    if w < w_min:
        return w_min
    if w > w_max:
        return w_max
    return w


@njit(cache=True, inline="always")
def on_pre(code, prm, w, x_post1, x_post2):
    """Weight after a presynaptic spike arrives; ``x_post*`` are the current post traces."""
    if code == TRIPLET:
        w = w + prm[2] * prm[0] * x_post1
    return clip(w, prm[3], prm[4])


@njit(cache=True, inline="always")
def on_post(code, prm, w, x_pre, x_post2_before):
    """Weight after a postsynaptic spike; ``x_pre`` is the synapse's current pre trace and
    ``x_post2_before`` the slow post trace just before this spike."""
    if code == TRIPLET:
        w = w + prm[1] * x_pre * x_post2_before
    return clip(w, prm[3], prm[4])
