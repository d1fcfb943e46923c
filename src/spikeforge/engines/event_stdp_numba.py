"""Compiled response of the frozen event-STDP patch layer to constant input currents.

The simulator behind :func:`spikeforge.models.event_stdp.respond` with ``deterministic=True`` (a
rate-based drive, constant over the presentation). It loops over the same equations as
:func:`spikeforge.models.event_stdp.layer_step`: the current LIF scalar step
:func:`spikeforge.neurons.current_lif.step_c` for both populations, the talk's adaptive threshold
for the inhibitory cells (:mod:`spikeforge.neurons.adaptive_threshold`), and E->I identity, I->E
hollow or k-winners inhibition.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..jit import kernel
from ..neurons.adaptive_threshold import talk_threshold_c
from ..neurons.current_lif import compiled_constants, step_c

_INHIBITION_CODES = {"none": 0, "ei": 1, "k_winners": 2}


@kernel
def _respond_const(current, thr, steps, inhibition, k, w_ei, w_ie, ce, ci, counts):
    """For each row of ``current`` [M, N] (held constant over ``steps``), simulate the layer of
    :func:`layer_step` (excitatory and inhibitory current LIF cells, E->I identity, I->E hollow, or
    k-winners) with frozen excitatory thresholds ``thr`` [N], and add spike counts into ``counts``.
    ``ce``/``ci``: (v_rest, v_reset, v_thresh, R, decay, n_ref, alpha, beta) per population."""
    m, n = current.shape
    ve = np.empty(n, np.float32)
    vi = np.empty(n, np.float32)
    le = np.empty(n, np.int64)
    li = np.empty(n, np.int64)
    thi = np.empty(n, np.float32)
    si_prev = np.zeros(n, np.bool_)
    si_now = np.zeros(n, np.bool_)
    se = np.zeros(n, np.bool_)
    drive = np.empty(n, np.float32)
    e_rest, e_reset, e_th, e_r, e_dec, e_nref, _ea, _eb = ce
    i_rest, i_reset, i_th, i_r, i_dec, i_nref, i_a, i_b = ci
    for row in range(m):
        # exact shortcut: starting at rest, v moves monotonically towards v_inf (inhibition only
        # lowers it), so a row whose v_inf stays below every threshold never spikes
        silent = e_dec >= 0.0
        for j in range(n):
            if max(e_rest, e_rest + e_r * current[row, j]) >= e_th + thr[j]:
                silent = False
                break
        if silent:
            continue
        for j in range(n):
            ve[j] = e_rest
            vi[j] = i_rest
            le[j] = 0
            li[j] = 0
            thi[j] = 0.0
            si_prev[j] = False
        for _t in range(steps):
            n_inh = 0
            for j in range(n):
                if si_prev[j]:
                    n_inh += 1
            n_cand = 0
            for j in range(n):
                cur = current[row, j]
                if inhibition == 1:
                    cur -= w_ie * (n_inh - (1 if si_prev[j] else 0))
                v_old = ve[j]
                v, le[j], s = step_c(v_old, le[j], cur, thr[j], e_rest, e_reset, e_th, e_r, e_dec, e_nref)
                ve[j] = v
                se[j] = s
                if s:
                    n_cand += 1
                    drive[j] = v_old + e_r * cur - thr[j]
            if inhibition == 2 and n_cand > k:
                # keep the k candidates with the largest drive; losers are reset, not refractory
                for _ in range(n_cand - k):
                    worst = -1
                    for j in range(n):
                        if se[j] and (worst < 0 or drive[j] < drive[worst]):
                            worst = j
                    se[worst] = False
                    le[worst] = 0  # a candidate was not refractory before this step
            for j in range(n):
                if se[j]:
                    counts[row, j] += 1.0
            if inhibition == 1:
                for j in range(n):
                    cur = w_ei * (1.0 if se[j] else 0.0)
                    v, li[j], s = step_c(vi[j], li[j], cur, thi[j], i_rest, i_reset, i_th, i_r, i_dec, i_nref)
                    vi[j] = v
                    thi[j] = talk_threshold_c(thi[j], 1.0 if s else 0.0, i_a, i_b)
                    si_now[j] = s
                for j in range(n):
                    si_prev[j] = si_now[j]


def respond_constant_compiled(current: torch.Tensor, thr: torch.Tensor, layer: Any, coding: Any) -> torch.Tensor:
    """Spike counts ``[M, N]`` of the frozen layer for input currents ``[M, N]`` held constant
    for ``coding.steps`` steps (numba; same equations and parameters as
    ``models.event_stdp.layer_step``). ``layer`` and ``coding`` are the model's
    ``WTALayerParams`` and ``RateCodingParams``; they are read by attribute, so this engine does not
    import the model that calls it."""
    cur = np.ascontiguousarray(current.detach().cpu().numpy(), dtype=np.float32)
    th = np.ascontiguousarray(thr.detach().cpu().numpy().reshape(-1), dtype=np.float32)
    counts = np.zeros(cur.shape, dtype=np.float32)
    _respond_const(
        cur,
        th,
        coding.steps,
        _INHIBITION_CODES[layer.inhibition],
        layer.k,
        float(layer.w_ei_na),
        float(layer.w_ie_na),
        compiled_constants(layer.excitatory, coding.dt_ms),
        compiled_constants(layer.inhibitory, coding.dt_ms),
        counts,
    )
    return torch.from_numpy(counts)
