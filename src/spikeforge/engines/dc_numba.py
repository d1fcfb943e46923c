"""Compiled exact CPU engine for the Diehl & Cook network (one example at a time).

The per-step loop runs in numba with the exact sequential dynamics of the reference model and
Brian's schedule within a step:

1. state update of both layers (integrate v, decay g_e, g_i and theta), threshold, reset;
2. synapses: input spikes of this step are delivered (``g_e += w`` when they arrive, after the
   synapse's delay), then the pre-spike STDP update of every arriving spike (Brian 2 ``on_pre``
   semantics, at arrival); then excitatory spikes apply the post-spike STDP update to their column
   and drive their inhibitory partner (``g_e,i += w_ei``); inhibitory spikes drive all other
   excitatory neurons (``g_i += w_ie``, as total minus self, O(N)).

Conductance increments therefore act from the next step on, as in Brian.

Cost: per step O(N) for the neurons; per input spike one contiguous pass over its weight row (into
a ring of future conductance increments, one slot per step of delay); per excitatory spike one
weight column. STDP traces are never decayed step by step: each trace stores its value at its last
update and the step of that update, and is read through a table of ``exp(-k dt / tau)`` (exact for
exponential decay; the table ends where the factor is below 1e-20, so a dropped term is under
the rounding of any weight above 1e-8). Pre-spike updates are only computed for the few neurons
whose post trace is still non-zero, and inhibitory neurons at rest are skipped until driven.
Nothing is allocated in the loop.
"""

from __future__ import annotations

import warnings

import numpy as np
from numba import njit

from ..config import ConfigError
from ..encoding.poisson import poisson_events
from ..models.diehl_cook import DiehlCookConfig, DiehlCookState
from ..neurons.conductance_lif import ConductanceLIFParams, decay_factors
from .base import DCEngine, attempt_seed

# ---------------------------------------------------------------------------------------------
# STDP rules: the weight-update formulas, dispatched on the rule code
# (plasticity.stdp.RULE_CODES). A new rule is a new code there plus a branch in on_pre/on_post
# here; the loop does not change. They live in this file on purpose: numba's on-disk cache is
# keyed by the file of the cached function, so formulas inlined from another file would leave a
# stale cache behind after an edit. ``prm`` is STDPParams.kernel_params():
# [nu_pre, nu_post, pre_sign, w_min, w_max, x_tar, mu, beta].
# Contract: on_pre must leave w unchanged when x_post1 is 0 (every Diehl & Cook rule's pre-spike
# term is proportional to the post trace); the loop skips the call in that case.
# ---------------------------------------------------------------------------------------------

TRIPLET, POSTPRE, EXPONENTIAL, PRESYNAPTIC = 0, 1, 2, 3


@njit(inline="always")
def clip(w, w_min, w_max):
    if w < w_min:
        return w_min
    if w > w_max:
        return w_max
    return w


@njit(inline="always")
def on_pre(code, prm, w, x_post1, x_post2):
    """Weight after a presynaptic spike arrives; ``x_post*`` are the current post traces."""
    if code == TRIPLET:
        w = w + prm[2] * prm[0] * x_post1
    elif code == POSTPRE:
        w = w + prm[2] * prm[0] * x_post1 * max(w, 0.0) ** prm[6]
    return clip(w, prm[3], prm[4])


@njit(inline="always")
def on_post(code, prm, w, x_pre, x_post2_before):
    """Weight after a postsynaptic spike; ``x_pre`` is the synapse's current pre trace and
    ``x_post2_before`` the slow post trace just before this spike."""
    if code == TRIPLET:
        w = w + prm[1] * x_pre * x_post2_before
    elif code == POSTPRE or code == PRESYNAPTIC:
        # normalisation can leave w above w_max: the soft bound then gives 0, not a complex power
        w = w + prm[1] * (x_pre - prm[5]) * max(prm[4] - w, 0.0) ** prm[6]
    elif code == EXPONENTIAL:
        w = w + prm[1] * (x_pre * np.exp(-prm[7] * w) - prm[5] * np.exp(-prm[7] * (prm[4] - w)))
    return clip(w, prm[3], prm[4])


# layout of the neuron parameter vector read by the kernel
_NP = (
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
)


def neuron_vector(p: ConductanceLIFParams, dt_ms: float) -> np.ndarray:
    """The neuron parameters in the order the kernel reads them (see ``_NP``)."""
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
        ],
        dtype=np.float64,
    )


def trace_table(tau_ms: float, dt_ms: float) -> np.ndarray:
    """``exp(-k dt / tau)`` for k = 0.., ending with a 0 that every longer gap maps to."""
    n = int(np.ceil(46.0 * tau_ms / dt_ms)) + 1  # exp(-46) = 1e-20: below rounding for any w > 1e-8
    tab = np.exp(-np.arange(n) * dt_ms / tau_ms)
    tab[-1] = 0.0
    return tab


@njit(cache=True, inline="always")
def _decayed(tab, value, gap):
    if gap >= tab.shape[0]:
        return 0.0
    return value * tab[gap]


@njit(cache=True, inline="always")
def _integrate(v, g_e, g_i, v_rest, e_exc, e_inh, dtm, exponential):
    """One step of the membrane equation (forward Euler, or exact for constant conductances)."""
    if exponential:
        gt = 1.0 + g_e + g_i
        v_inf = (v_rest + g_e * e_exc + g_i * e_inh) / gt
        return v_inf + (v - v_inf) * np.exp(-dtm * gt)
    return v + dtm * ((v_rest - v) + g_e * (e_exc - v) + g_i * (e_inh - v))


@njit(cache=True)
def _update_layer(v, ge, gi, theta, since, prm, learning, spk):
    """Integrate, threshold and reset one layer; writes spiking indices to ``spk``, returns count.

    The first pass has no data-dependent branches (selects instead of ifs), so the compiler
    vectorises it; the second collects the (rare) spikes, which are the neurons whose step count
    since their last spike is 0 (no separate flag array: its byte-wide stores cost a fifth of the
    step). Conductances that decay below 1e-100 are
    set to 0: their effect on v is far below rounding, and without this they end in the subnormal
    range, where every step becomes about 15 times slower (Euler decay by 0.75 gets stuck at the
    smallest subnormal)."""
    v_rest, v_reset, v_th = prm[0], prm[1], prm[2]
    e_exc, e_inh, dtm = prm[3], prm[4], prm[5]
    f_ge, f_gi, theta_plus = prm[6], prm[7], prm[9]
    refr, clamp = int(prm[10]), int(prm[11])
    adaptive, exponential = prm[12] != 0.0, prm[13] != 0.0
    f_theta = prm[8] if (adaptive and learning) else 1.0
    use_theta = 1.0 if adaptive else 0.0
    n_neurons = v.shape[0]
    for j in range(n_neurons):
        s = since[j] + 1
        g_e = ge[j]
        g_i = gi[j]
        vj = v[j]
        v_new = _integrate(vj, g_e, g_i, v_rest, e_exc, e_inh, dtm, exponential)
        v_new = v_reset if s < clamp else v_new
        g_e = g_e * f_ge
        g_i = g_i * f_gi
        ge[j] = g_e if g_e > 1e-100 else 0.0
        gi[j] = g_i if g_i > 1e-100 else 0.0
        th = theta[j] * f_theta
        theta[j] = th
        fire = (v_new > v_th + use_theta * th) & (s >= refr)
        v[j] = v_reset if fire else v_new
        since[j] = 0 if fire else s
    n = 0
    for j in range(n_neurons):
        if since[j] == 0:
            spk[n] = j
            n += 1
            if adaptive and learning:
                theta[j] += theta_plus
    return n


@njit(cache=True)
def _update_active(v, ge, gi, since, prm, active, is_active, spk):
    """The inhibitory layer's update, restricted to neurons that are not at rest.

    A neuron is at rest when its conductances are 0, it is past its refractory and clamp periods and
    one more update would not change ``v`` (v has reached its floating-point fixed point next to
    v_rest). Updating it would change nothing, so it is skipped until its excitatory partner drives
    it again: bitwise the same result as updating every neuron. ``active[0]`` is the count."""
    v_rest, v_reset, v_th = prm[0], prm[1], prm[2]
    e_exc, e_inh, dtm = prm[3], prm[4], prm[5]
    f_ge, f_gi = prm[6], prm[7]
    refr, clamp = int(prm[10]), int(prm[11])
    exponential = prm[13] != 0.0
    quiet = max(refr, clamp)
    n = 0
    kept = 0
    for q in range(active[0]):
        j = active[q + 1]
        s = since[j] + 1
        g_e = ge[j]
        g_i = gi[j]
        vj = v[j]
        v_new = _integrate(vj, g_e, g_i, v_rest, e_exc, e_inh, dtm, exponential)
        if s < clamp:
            v_new = v_reset
        g_e *= f_ge
        g_i *= f_gi
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


@njit(cache=True, inline="always")
def _activate(j, active, is_active):
    if not is_active[j]:
        is_active[j] = True
        active[active[0] + 1] = j
        active[0] += 1


@njit(cache=True, inline="always")
def _pre_update(
    i, j, d, t, W, rule, rule_prm, post1, x_post2, post_last, tab_post2, ring_t, ring_head, ring_ge, hist_len
):
    """Pre-spike STDP update of synapse (i, j) whose spike (emitted at ``t - d``) arrives at ``t``."""
    old = W[i, j]
    new = on_pre(rule, rule_prm, old, post1, _decayed(tab_post2, x_post2[j], t - post_last[j]))
    W[i, j] = new
    if new != old and d > 0:
        # later spikes of i still in flight to j carry the old weight
        r = ring_t.shape[1]
        h = ring_head[i]
        for back in range(r):
            ts = ring_t[i, (h - back) & (r - 1)]
            if ts <= t - d:
                break
            ring_ge[(ts + d) & (hist_len - 1), j] += new - old


@njit(cache=True, inline="always")
def _push(bk_i, bk_j, bk_n, bk_over, t_arrive, i, j):
    b = t_arrive & (bk_n.shape[0] - 1)
    n = bk_n[b]
    if n < bk_i.shape[1]:
        bk_i[b, n] = i
        bk_j[b, n] = j
        bk_n[b] = n + 1
    else:
        bk_over[b] = True


@njit(cache=True)
def run_steps(
    n_steps,
    ev_ptr,
    ev_idx,
    learning,
    counts,
    t_now,
    ne,
    ni,
    w_ei,
    w_ie,
    v_e,
    ge_e,
    gi_e,
    theta,
    since_e,
    v_i,
    ge_i,
    gi_i,
    since_i,
    W,
    OFF,
    DT,
    hist_idx,
    hist_n,
    ring_ge,
    rule,
    rule_prm,
    trace_set,
    tab_pre,
    tab_post1,
    tab_post2,
    ring_t,
    ring_x,
    ring_head,
    x_post1,
    x_post2,
    post_last,
    recent,
    bk_i,
    bk_j,
    bk_n,
    bk_over,
    spk_e,
    spk_i,
    inh_active,
    inh_is_active,
    rec_t,
    rec_j,
    rec_n,
):
    """Advance the network ``n_steps`` steps with input events ``(ev_ptr, ev_idx)`` (CSR by step;
    ``ev_ptr`` of length ``n_steps + 1``; all zeros for no input). Adds excitatory spike counts to
    ``counts`` and returns the new global step counter. Excitatory spikes are also written to the
    recording buffers ``rec_t, rec_j`` (step, neuron) while ``rec_n[0]`` is below their length
    (length 0: no recording).

    Delayed delivery: when input ``i`` fires at step ``t`` its weight row is added at once to a ring
    of future conductance increments, ``ring_ge[t % L + D[i, j], j] += W[i, j]`` (one contiguous
    pass over the row through precomputed flat offsets ``OFF[i, j] = D[i, j] * N + j``). The ring
    has ``2 L`` rows so that this needs no wrap-around: step ``t`` consumes rows ``t % L`` and
    ``t % L + L``. Brian delivers ``W[i, j]`` as it is at
    arrival, so whenever STDP changes a weight while a spike of that synapse is still in flight, the
    change is added to the pending slot too: delivery stays exact.

    Pre traces live on the input side: each input keeps a ring of its recent spike times and the
    trace value just after each, long enough to cover the longest delay, so the trace a synapse
    with delay ``d`` sees at step ``t`` is read from the newest spike emitted at or before ``t - d``.
    The pre-spike (depression) update at arrival is only non-zero for neurons whose post trace is
    non-zero; those are kept in ``recent`` (``recent[0]`` is the count). When an input fires, its
    arrivals at those neurons are scheduled into per-step buckets (``bk_*``) if they arrive while
    the trace is still live; a neuron that fires schedules the spikes already in flight to it that
    arrive after the window of its previous spike (all of them after a quiet spell). A bucket that
    overflows falls back to scanning its step's arrivals (capacity 0: every step scans, the
    reference path), so the capacity never changes the result."""
    n_in, n_neurons = W.shape
    hist_len = hist_n.shape[0]
    hm = hist_len - 1  # ring lengths are powers of two: "& mask" instead of a slow "% length"
    ring_flat = ring_ge.reshape(ring_ge.size)
    r = ring_t.shape[1]
    rm = r - 1
    post_window = tab_post1.shape[0]
    for s in range(n_steps):
        t = t_now + s
        n_e = _update_layer(v_e, ge_e, gi_e, theta, since_e, ne, learning, spk_e)
        n_i = _update_active(v_i, ge_i, gi_i, since_i, ni, inh_active, inh_is_active, spk_i)
        slot = t & hm
        # input spikes of this step: delay history, pre-trace rings, and delivery into ring_ge
        m = 0
        for k in range(ev_ptr[s], ev_ptr[s + 1]):
            i = ev_idx[k]
            hist_idx[slot, m] = i
            m += 1
            if learning:
                h = ring_head[i]
                x_new = 1.0
                if not trace_set:
                    gap = t - ring_t[i, h]
                    if gap < tab_pre.shape[0]:
                        x_new += ring_x[i, h] * tab_pre[gap]
                h = (h + 1) & rm
                ring_head[i] = h
                ring_t[i, h] = t
                ring_x[i, h] = x_new
                # schedule the pre-spike update for the neurons whose post trace is live
                # (only if the trace is still live at arrival: when the trace expires in flight
                # and the neuron fires again before the arrival, its in-flight scan schedules it)
                for q in range(recent[0]):
                    j = recent[q + 1]
                    if t - post_last[j] + DT[j, i] < post_window:
                        _push(bk_i, bk_j, bk_n, bk_over, t + DT[j, i], i, j)
            base = slot * n_neurons
            w_row = W[i]
            off_row = OFF[i]
            for j in range(n_neurons):
                ring_flat[base + off_row[j]] += w_row[j]
        hist_n[slot] = m
        # arrivals of this step
        hi = slot + hist_len
        for j in range(n_neurons):
            ge_e[j] += ring_ge[slot, j] + ring_ge[hi, j]
            ring_ge[slot, j] = 0.0
            ring_ge[hi, j] = 0.0
        if learning:
            # pre-spike updates at arrival: only neurons with a live post trace can change, and
            # their arrivals were scheduled into this step's bucket
            n_recent = 0
            for q in range(recent[0]):
                j = recent[q + 1]
                if t - post_last[j] < post_window:
                    recent[n_recent + 1] = j
                    n_recent += 1
            recent[0] = n_recent
            b = t & hm
            if bk_over[b] or bk_i.shape[1] == 0:
                # the bucket overflowed (or there are no buckets: capacity 0, the reference path):
                # find this step's arrivals at live neurons by a scan
                for d in range(min(hist_len, t + 1)):
                    sl = (t - d) & hm
                    for qi in range(hist_n[sl]):
                        i = hist_idx[sl, qi]
                        for q in range(n_recent):
                            j = recent[q + 1]
                            if DT[j, i] == d:
                                post1 = x_post1[j] * tab_post1[t - post_last[j]]
                                _pre_update(
                                    i,
                                    j,
                                    d,
                                    t,
                                    W,
                                    rule,
                                    rule_prm,
                                    post1,
                                    x_post2,
                                    post_last,
                                    tab_post2,
                                    ring_t,
                                    ring_head,
                                    ring_ge,
                                    hist_len,
                                )
                bk_over[b] = False
            else:
                for q in range(bk_n[b]):
                    i = bk_i[b, q]
                    j = bk_j[b, q]
                    gap = t - post_last[j]
                    if gap < post_window:
                        _pre_update(
                            i,
                            j,
                            DT[j, i],
                            t,
                            W,
                            rule,
                            rule_prm,
                            x_post1[j] * tab_post1[gap],
                            x_post2,
                            post_last,
                            tab_post2,
                            ring_t,
                            ring_head,
                            ring_ge,
                            hist_len,
                        )
            bk_n[b] = 0
        else:
            bk_n[t & hm] = 0
        # excitatory spikes: post-spike STDP on their column, drive the inhibitory partner
        for q in range(n_e):
            j = spk_e[q]
            counts[j] += 1
            if rec_n[0] < rec_t.shape[0]:
                rec_t[rec_n[0]] = t
                rec_j[rec_n[0]] = j
                rec_n[0] += 1
            if learning:
                gap = t - post_last[j]
                p2 = _decayed(tab_post2, x_post2[j], gap)
                for i in range(n_in):
                    d = DT[j, i]
                    # pre trace seen by this synapse: newest spike of i emitted at or before t - d;
                    # newer ones are still in flight and get the weight change on arrival
                    h = ring_head[i]
                    xp = 0.0
                    first_pending = -1
                    for back in range(r):
                        kk = (h - back) & rm
                        ts = ring_t[i, kk]
                        if ts <= t - d:
                            g = t - d - ts
                            if g < tab_pre.shape[0]:
                                xp = ring_x[i, kk] * tab_pre[g]
                            break
                        first_pending = back
                    old = W[i, j]
                    new = on_post(rule, rule_prm, old, xp, p2)
                    W[i, j] = new
                    if new != old:
                        for back in range(first_pending + 1):
                            ts = ring_t[i, (h - back) & rm]
                            ring_ge[(ts + d) & hm, j] += new - old
                if trace_set:
                    x_post1[j] = 1.0
                    x_post2[j] = 1.0
                else:
                    x_post1[j] = _decayed(tab_post1, x_post1[j], gap) + 1.0
                    x_post2[j] = p2 + 1.0
                if gap >= post_window:
                    recent[recent[0] + 1] = j
                    recent[0] += 1
                if gap + hist_len > post_window:
                    # a spike in flight to j was scheduled at emission only if it arrives inside the
                    # trace window of j's previous spike (at post_last[j]); those arriving later
                    # (all of them after a quiet spell) are scheduled now, since j's new trace is live
                    for d in range(min(hist_len, t + 1)):
                        sl = (t - d) & hm
                        for qi in range(hist_n[sl]):
                            i = hist_idx[sl, qi]
                            arrive = t - d + DT[j, i]
                            if arrive > t and arrive - post_last[j] >= post_window:
                                _push(bk_i, bk_j, bk_n, bk_over, arrive, i, j)
                post_last[j] = t
            ge_i[j] += w_ei
            _activate(j, inh_active, inh_is_active)
        # inhibitory spikes: all-but-self inhibition, as total minus self
        if n_i > 0:
            total = w_ie * n_i
            for j in range(n_neurons):
                gi_e[j] += total
            for q in range(n_i):
                gi_e[spk_i[q]] -= w_ie
    return t_now + n_steps


@njit(cache=True)
def rebuild_in_flight(W, D, hist_idx, hist_n, ring_ge, t_next):
    """Recompute the conductance of spikes still in flight from the current weights (after the
    weights were rescaled between presentations, Brian delivers the rescaled weights)."""
    hist_len = hist_n.shape[0]
    ring_ge[:, :] = 0.0
    for d in range(1, min(hist_len, t_next + 1)):
        te = t_next - d
        sl = te % hist_len
        for qi in range(hist_n[sl]):
            i = hist_idx[sl, qi]
            for j in range(W.shape[1]):
                if D[i, j] >= d:
                    ring_ge[(te + D[i, j]) % hist_len, j] += W[i, j]


@njit(cache=True)
def normalize_columns_inplace(W, total):
    n_in, n = W.shape
    sums = np.zeros(n)
    for i in range(n_in):
        for j in range(n):
            sums[j] += W[i, j]
    for j in range(n):
        if sums[j] > 0.0:
            sums[j] = total / sums[j]
        else:
            sums[j] = 1.0
    for i in range(n_in):
        for j in range(n):
            W[i, j] *= sums[j]


class NumbaDCEngine(DCEngine):
    """Exact sequential engine: one example at a time, the time loop compiled with numba."""

    name = "numba"
    # scheduled pre-spike updates per step (None: max(1024, 4N); 0: no buckets, every step scans)
    bucket_capacity: int | None = None

    def __init__(self, cfg: DiehlCookConfig, state: DiehlCookState, seed: int = 0, device=None):
        super().__init__(cfg, state, seed)
        if cfg.inh.adaptive:
            raise ConfigError(
                "the compiled engine has no adaptive threshold for the inhibitory layer: "
                "set inh.adaptive = false or use --engine torch"
            )
        net, proto, stdp = cfg.network, cfg.protocol, cfg.stdp
        n_in, n = net.n_input, net.n_neurons
        dt = proto.dt_ms
        self.W = np.ascontiguousarray(state.weights, dtype=np.float64).copy()
        self.theta = np.ascontiguousarray(state.theta, dtype=np.float64).copy()
        self.delays = np.ascontiguousarray(state.delays, dtype=np.int32)
        n_delay = int(self.delays.max(initial=0)) + 1
        # slots of the delay rings (input history, scheduled updates, delivery) and of each input's
        # spike-time ring: a power of two above the longest delay + 1, so that indices wrap with a mask
        slots = 1 << int(n_delay).bit_length()
        # compact copies of the delays: by input row (delivery) and by neuron row (STDP)
        small = np.int8 if n_delay <= 127 else np.int16 if n_delay <= 32767 else np.int32
        self.d_rows = np.ascontiguousarray(self.delays, dtype=small)
        # flat offsets of the delivery ring (delay row, neuron column) for each synapse
        wide = np.int32 if 2 * slots * n < 2**31 else np.int64
        self.off = np.ascontiguousarray(self.delays.astype(wide) * n + np.arange(n, dtype=wide))
        self.d_cols = np.ascontiguousarray(self.delays.T, dtype=small)
        self.hist_idx = np.zeros((slots, n_in), np.int32)
        self.hist_n = np.zeros(slots, np.int32)
        self.ne = neuron_vector(cfg.exc, dt)
        self.ni = neuron_vector(cfg.inh, dt)
        self.rule_code = stdp.code
        self.rule_prm = stdp.kernel_params()
        self.trace_set = stdp.trace_mode == "set"
        self.tab_pre = trace_table(stdp.tau_pre_ms, dt)
        self.tab_post1 = trace_table(stdp.tau_post1_ms, dt)
        # the live-post-trace window must outlast the longest delay (no arrival is scheduled twice)
        if len(self.tab_post1) < n_delay + 2:
            self.tab_post1 = np.concatenate([self.tab_post1, np.zeros(n_delay + 2 - len(self.tab_post1))])
        self.tab_post2 = trace_table(stdp.tau_post2_ms, dt)
        self.spk_e = np.zeros(n, np.int64)
        self.spk_i = np.zeros(n, np.int64)
        self.reset_dynamics()

    def set_rate_scale(self, scale: float) -> None:
        self.rule_prm = self.cfg.stdp.scaled(scale).kernel_params()

    _rec = (np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(1, np.int64))

    def start_recording(self, capacity: int) -> None:
        """Record excitatory spikes (global step, neuron) into a buffer of ``capacity`` events;
        spikes beyond it are dropped (memory is bounded by the cap, not by run length)."""
        self._rec = (np.zeros(capacity, np.int64), np.zeros(capacity, np.int32), np.zeros(1, np.int64))

    def stop_recording(self) -> tuple[np.ndarray, np.ndarray]:
        """The recorded ``(steps, neurons)`` since :meth:`start_recording`; recording stops."""
        rec_t, rec_j, rec_n = self._rec
        n = int(rec_n[0])
        self._rec = NumbaDCEngine._rec
        return rec_t[:n].copy(), rec_j[:n].copy()

    def reset_dynamics(self) -> None:
        cfg = self.cfg
        n_in, n = cfg.network.n_input, cfg.network.n_neurons
        never = -(1 << 40)
        self.t = 0
        self.v_e = np.full(n, cfg.exc.v_rest_mv + cfg.exc.v_init_offset_mv)
        self.v_i = np.full(n, cfg.inh.v_rest_mv + cfg.inh.v_init_offset_mv)
        self.ge_e, self.gi_e, self.ge_i, self.gi_i = (np.zeros(n) for _ in range(4))
        self.since_e = np.full(n, 1 << 30, np.int64)
        self.since_i = np.full(n, 1 << 30, np.int64)
        # inhibitory neurons not yet at rest (all, at the start)
        self.inh_active = np.concatenate([[n], np.arange(n)]).astype(np.int64)
        self.inh_is_active = np.ones(n, np.bool_)
        self.ring_t = np.full((n_in, self.hist_n.shape[0]), never, np.int64)
        self.ring_x = np.zeros((n_in, self.hist_n.shape[0]))
        self.ring_head = np.zeros(n_in, np.int64)
        self.x_post1, self.x_post2 = np.zeros(n), np.zeros(n)
        self.post_last = np.full(n, never, np.int64)
        self.hist_n[:] = 0
        self.ring_ge = np.zeros((2 * self.hist_n.shape[0], n))  # two copies of the delay ring: no wrap
        self.recent = np.zeros(n + 1, np.int64)
        # buckets of scheduled pre-spike updates, one per step of delay; an overflowing bucket
        # falls back to scanning that step's arrivals
        cap = max(1024, 4 * n) if self.bucket_capacity is None else self.bucket_capacity
        self.bk_i = np.zeros((self.hist_n.shape[0], cap), np.int32)
        self.bk_j = np.zeros((self.hist_n.shape[0], cap), np.int32)
        self.bk_n = np.zeros(self.hist_n.shape[0], np.int64)
        self.bk_over = np.zeros(self.hist_n.shape[0], np.bool_)

    # dynamic state that a checkpoint carries so that a resumed run continues exactly
    _DYNAMIC = (
        "v_e",
        "ge_e",
        "gi_e",
        "since_e",
        "v_i",
        "ge_i",
        "gi_i",
        "since_i",
        "ring_t",
        "ring_x",
        "ring_head",
        "x_post1",
        "x_post2",
        "post_last",
        "hist_idx",
        "hist_n",
        "ring_ge",
        "recent",
        "bk_i",
        "bk_j",
        "bk_n",
        "bk_over",
        "inh_active",
        "inh_is_active",
    )

    def dynamic_state(self) -> dict[str, np.ndarray]:
        out = {k: getattr(self, k).copy() for k in self._DYNAMIC}
        out["t"] = np.array([self.t], np.int64)
        return out

    def load_dynamic_state(self, arrays: dict[str, np.ndarray]) -> bool:
        """Restore the state saved by :meth:`dynamic_state`; returns False (and keeps the state at
        rest) when the checkpoint was written by an engine with another ring layout."""
        if "hist_n" in arrays and arrays["hist_n"].shape != self.hist_n.shape:
            warnings.warn(
                "the checkpoint's network dynamics were saved by an older engine layout: "
                "training continues from its weights and theta with membranes and STDP traces "
                "at rest (not bit-identical to an uninterrupted run)",
                stacklevel=2,
            )
            return False
        for k in self._DYNAMIC:
            if k in arrays:
                cur = getattr(self, k)
                if cur.shape != arrays[k].shape:
                    raise ValueError(f"dynamic state '{k}' has shape {arrays[k].shape}, expected {cur.shape}")
                cur[...] = arrays[k]
        if "t" in arrays:
            self.t = int(arrays["t"][0])
        return True

    def _run(self, n_steps, ptr, idx, learning, counts):
        self.t = run_steps(
            n_steps,
            ptr,
            idx,
            learning,
            counts,
            self.t,
            self.ne,
            self.ni,
            self.cfg.network.w_ei,
            self.cfg.network.w_ie,
            self.v_e,
            self.ge_e,
            self.gi_e,
            self.theta,
            self.since_e,
            self.v_i,
            self.ge_i,
            self.gi_i,
            self.since_i,
            self.W,
            self.off,
            self.d_cols,
            self.hist_idx,
            self.hist_n,
            self.ring_ge,
            self.rule_code,
            self.rule_prm,
            self.trace_set,
            self.tab_pre,
            self.tab_post1,
            self.tab_post2,
            self.ring_t,
            self.ring_x,
            self.ring_head,
            self.x_post1,
            self.x_post2,
            self.post_last,
            self.recent,
            self.bk_i,
            self.bk_j,
            self.bk_n,
            self.bk_over,
            self.spk_e,
            self.spk_i,
            self.inh_active,
            self.inh_is_active,
            *self._rec,
        )

    def run_events(self, ptr, idx, learning: bool, n_steps: int | None = None) -> np.ndarray:
        """Run one phase driven by CSR input events; returns excitatory spike counts."""
        n_steps = len(ptr) - 1 if n_steps is None else n_steps
        counts = np.zeros(self.cfg.network.n_neurons, np.int64)
        self._run(n_steps, np.ascontiguousarray(ptr, np.int32), np.ascontiguousarray(idx, np.int32), learning, counts)
        return counts

    def rest(self, learning: bool) -> None:
        n = self.cfg.protocol.rest_steps
        if n > 0:
            self._run(n, self._no_input(n), self._empty_idx, learning, np.zeros(self.cfg.network.n_neurons, np.int64))

    _empty_idx = np.zeros(0, np.int32)

    def _no_input(self, n):
        cache = getattr(self, "_zero_ptr", None)
        if cache is None or len(cache) < n + 1:
            cache = self._zero_ptr = np.zeros(n + 1, np.int32)
        return cache

    def normalize(self) -> None:
        if self.cfg.network.norm_total is not None:
            normalize_columns_inplace(self.W, self.cfg.network.norm_total)
            rebuild_in_flight(self.W, self.d_rows, self.hist_idx, self.hist_n, self.ring_ge, self.t)

    def present(self, images, learning: bool, keys) -> tuple[np.ndarray, np.ndarray]:
        proto = self.cfg.protocol
        images = np.asarray(images, dtype=np.float64).reshape(len(keys), -1)
        counts = np.zeros((len(keys), self.cfg.network.n_neurons), np.int64)
        attempts = np.zeros(len(keys), np.int64)
        n_steps = proto.example_steps
        for b, key in enumerate(keys):
            intensity = proto.input_intensity
            for attempt in range(proto.max_retries + 1):
                if learning:
                    self.normalize()
                rates = images[b] * (proto.rate_hz_per_level * intensity)
                ptr, idx = poisson_events(rates, n_steps, proto.dt_ms, attempt_seed(key, attempt))
                c = self.run_events(ptr, idx, learning)
                self.rest(learning)
                attempts[b] = attempt + 1
                if c.sum() >= proto.min_spikes or (not learning and not proto.retry_in_test):
                    break
                intensity += proto.intensity_step
            counts[b] = c
        return counts, attempts

    def export_state(self) -> DiehlCookState:
        return DiehlCookState(weights=self.W.copy(), theta=self.theta.copy(), delays=self.delays.copy())
