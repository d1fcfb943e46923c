"""The compiled loop of the Diehl & Cook engine: event scheduling, delivery and buffers only.

The equations it calls live in their homes: the neuron updates in
:mod:`spikeforge.neurons.conductance_lif` (``update_layer_c``, ``update_active_c``, inlined), the
learning rule's two functions in its ``plasticity/stdp_*.py`` module (inlined into a loop built
per rule by :func:`kernel_for`). The engine class that owns the buffers is
:mod:`.dc_numba`.

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

Arguments are grouped (:class:`Network`, :class:`Delivery`, :class:`Rule`, :class:`Traces`,
:class:`Scratch`, all NamedTuples that numba unpacks at no cost).
"""

from __future__ import annotations

import inspect
import pathlib
import types
from typing import NamedTuple

import numpy as np
from numba import njit

from ..jit import kernel
from ..neurons.conductance_lif import activate_c, update_active_c, update_layer_c
from .cycles import cycles

PROFILE = False  # rebound to True in the profiled loop (kernel_for(rule, profile=True))


class Network(NamedTuple):
    """Both layers' state (v, g_e, g_i, theta, steps since spike; the inhibitory active list) and
    their compiled parameter vectors (``conductance_lif.compiled_params``), fixed weights and the
    integration counters of both layers (``conductance_stability.new_stats``)."""

    state: tuple  # (v_e, ge_e, gi_e, theta, since_e, v_i, ge_i, gi_i, since_i, inh_active, inh_is_active)
    ne: np.ndarray
    ni: np.ndarray
    w_ei: float
    w_ie: float
    stats_e: np.ndarray
    stats_i: np.ndarray


class Delivery(NamedTuple):
    """Input weights and delays, the recent input history and the ring of future conductances."""

    W: np.ndarray  # [n_in, N] float64, updated in place by STDP
    OFF: np.ndarray  # [n_in, N] flat offsets D[i, j] * N + j into the delivery ring
    DT: np.ndarray  # [N, n_in] delays in steps, by neuron row (STDP)
    hist_idx: np.ndarray  # [slots, n_in] inputs that fired at each recent step
    hist_n: np.ndarray  # [slots] how many
    ring_ge: np.ndarray  # [2 slots, N] conductance increments still in flight
    dirty: np.ndarray  # [N] bool: column may have changed since the last normalisation (normalize_cached)
    ring_live: np.ndarray  # [2 slots] bool: False where a ring row is all zeros (skipped at arrival)
    n_delay: int  # longest delay + 1: a spike of step t writes rows t % slots + 0 .. n_delay - 1


class Rule(NamedTuple):
    """The learning rule's parameters (``STDPParams.kernel_params``), the trace mode and the trace
    decay tables (its two functions are bound into the loop by :func:`kernel_for`)."""

    prm: np.ndarray
    trace_set: bool
    tab_pre: np.ndarray
    tab_post1: np.ndarray
    tab_post2: np.ndarray


class Traces(NamedTuple):
    """STDP state: per-input spike-time rings with the trace after each spike, post traces, and the
    schedule of pre-spike updates (``recent``: neurons with a live post trace; ``bk_*``: buckets)."""

    ring_t: np.ndarray
    ring_x: np.ndarray
    ring_head: np.ndarray
    x_post1: np.ndarray
    x_post2: np.ndarray
    post_last: np.ndarray
    recent: np.ndarray
    bk_i: np.ndarray
    bk_j: np.ndarray
    bk_n: np.ndarray
    bk_over: np.ndarray


class Scratch(NamedTuple):
    """Spike index buffers of one step, the (optional) spike recording buffers and the section
    cycle counters of the profiled loop (``cycles.SECTIONS``; untouched by the default loop)."""

    spk_e: np.ndarray
    spk_i: np.ndarray
    rec_t: np.ndarray
    rec_j: np.ndarray
    rec_n: np.ndarray
    prof: np.ndarray


@kernel(inline="always")
def clip(w, w_min, w_max):
    if w < w_min:
        return w_min
    if w > w_max:
        return w_max
    return w


def trace_table(tau_ms: float, dt_ms: float) -> np.ndarray:
    """``exp(-k dt / tau)`` for k = 0.., ending with a 0 that every longer gap maps to."""
    n = int(np.ceil(46.0 * tau_ms / dt_ms)) + 1  # exp(-46) = 1e-20: below rounding for any w > 1e-8
    tab = np.exp(-np.arange(n) * dt_ms / tau_ms)
    tab[-1] = 0.0
    return tab


@kernel(inline="always")
def _decayed(tab, value, gap):
    if gap >= tab.shape[0]:
        return 0.0
    return value * tab[gap]


def _pre_update(i, j, d, t, post1, delivery, rule, traces):
    """Pre-spike STDP update of synapse (i, j) whose spike (emitted at ``t - d``) arrives at ``t``
    (a template: :func:`kernel_for` binds ``RULE_PRE`` to the rule's function)."""
    W, ring_ge, live, hist_len = delivery.W, delivery.ring_ge, delivery.ring_live, delivery.hist_n.shape[0]
    ring_t, ring_head = traces.ring_t, traces.ring_head
    old = W[i, j]
    p2 = _decayed(rule.tab_post2, traces.x_post2[j], t - traces.post_last[j])
    q = rule.prm
    new = RULE_PRE(old, post1, p2, q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7])  # noqa: F821
    new = clip(new, q[3], q[4])
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
            live[(ts + d) & (hist_len - 1)] = True


@kernel(inline="always")
def _arrive(ge, ring_ge, lo, hi, live):
    """``ge += ring_ge[lo] + ring_ge[hi]`` and both rows zeroed, skipping rows that are all zeros:
    adding ``+0.0`` changes no value (``ge`` is never ``-0.0``: the update stores ``+0.0`` below
    1e-100), so this is bit for bit the full update."""
    if live[lo] and live[hi]:
        for j in range(ge.shape[0]):
            ge[j] += ring_ge[lo, j] + ring_ge[hi, j]
            ring_ge[lo, j] = 0.0
            ring_ge[hi, j] = 0.0
    elif live[lo] or live[hi]:
        row = lo if live[lo] else hi
        for j in range(ge.shape[0]):
            ge[j] += ring_ge[row, j]
            ring_ge[row, j] = 0.0
    live[lo] = False
    live[hi] = False


@kernel(inline="always")
def _push(bk_i, bk_j, bk_n, bk_over, t_arrive, i, j):
    b = t_arrive & (bk_n.shape[0] - 1)
    n = bk_n[b]
    if n < bk_i.shape[1]:
        bk_i[b, n] = i
        bk_j[b, n] = j
        bk_n[b] = n + 1
    else:
        bk_over[b] = True


def run_steps(n_steps, ev_ptr, ev_idx, learning, counts, t_now, net, delivery, rule, traces, scratch):
    """A template: :func:`kernel_for` returns it compiled for one learning rule.

    Advance the network ``n_steps`` steps with input events ``(ev_ptr, ev_idx)`` (CSR by step;
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
    change is added to the pending slot too: delivery stays exact. Rows never written since they were
    last consumed are skipped at arrival (``ring_live``; :func:`_arrive`).

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
    v_e, ge_e, gi_e, theta, since_e, v_i, ge_i, gi_i, since_i, inh_active, inh_is_active = net.state
    ne, ni, w_ei, w_ie = net.ne, net.ni, net.w_ei, net.w_ie
    W, OFF, DT, hist_idx, hist_n, ring_ge, dirty, ring_live, n_delay = delivery
    ring_t, ring_x, ring_head, x_post1, x_post2, post_last, recent, bk_i, bk_j, bk_n, bk_over = traces
    trace_set, tab_pre, tab_post1, tab_post2 = rule.trace_set, rule.tab_pre, rule.tab_post1, rule.tab_post2
    q = rule.prm
    nu_pre, nu_post, pre_sign, w_min, w_max, x_tar, mu, beta = q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]
    spk_e, spk_i, rec_t, rec_j, rec_n, prof = scratch
    n_in, n_neurons = W.shape
    hist_len = hist_n.shape[0]
    hm = hist_len - 1  # ring lengths are powers of two: "& mask" instead of a slow "% length"
    ring_flat = ring_ge.reshape(ring_ge.size)
    r = ring_t.shape[1]
    rm = r - 1
    post_window = tab_post1.shape[0]
    for s in range(n_steps):
        t = t_now + s
        if PROFILE:
            c0 = cycles()
        n_e = update_layer_c(v_e, ge_e, gi_e, theta, since_e, ne, learning, spk_e, t, net.stats_e)
        n_i = update_active_c(v_i, ge_i, gi_i, since_i, ni, inh_active, inh_is_active, spk_i, t, net.stats_i)
        if PROFILE:
            c1 = cycles()
            prof[0] += c1 - c0
            c0 = c1
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
        if m > 0:
            for d in range(n_delay):
                ring_live[slot + d] = True
        if PROFILE:
            c1 = cycles()
            prof[1] += c1 - c0
            c0 = c1
        # arrivals of this step
        _arrive(ge_e, ring_ge, slot, slot + hist_len, ring_live)
        if PROFILE:
            c1 = cycles()
            prof[2] += c1 - c0
            c0 = c1
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
                                dirty[j] = True
                                post1 = x_post1[j] * tab_post1[t - post_last[j]]
                                _pre_update(i, j, d, t, post1, delivery, rule, traces)
                bk_over[b] = False
            else:
                for q in range(bk_n[b]):
                    i = bk_i[b, q]
                    j = bk_j[b, q]
                    gap = t - post_last[j]
                    if gap < post_window:
                        dirty[j] = True
                        post1 = x_post1[j] * tab_post1[gap]
                        _pre_update(i, j, DT[j, i], t, post1, delivery, rule, traces)
            bk_n[b] = 0
        else:
            bk_n[t & hm] = 0
        if PROFILE:
            c1 = cycles()
            prof[3] += c1 - c0
            c0 = c1
        # excitatory spikes: post-spike STDP on their column, drive the inhibitory partner
        for q in range(n_e):
            j = spk_e[q]
            counts[j] += 1
            if rec_n[0] < rec_t.shape[0]:
                rec_t[rec_n[0]] = t
                rec_j[rec_n[0]] = j
                rec_n[0] += 1
            if learning:
                dirty[j] = True
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
                    new = RULE_POST(old, xp, p2, nu_pre, nu_post, pre_sign, w_min, w_max, x_tar, mu, beta)  # noqa: F821
                    new = clip(new, w_min, w_max)
                    W[i, j] = new
                    if new != old:
                        for back in range(first_pending + 1):
                            ts = ring_t[i, (h - back) & rm]
                            ring_ge[(ts + d) & hm, j] += new - old
                            ring_live[(ts + d) & hm] = True
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
            activate_c(j, inh_active, inh_is_active)
        if PROFILE:
            c1 = cycles()
            prof[4] += c1 - c0
            c0 = c1
        # inhibitory spikes: all-but-self inhibition, as total minus self
        if n_i > 0:
            total = w_ie * n_i
            for j in range(n_neurons):
                gi_e[j] += total
            for q in range(n_i):
                gi_e[spk_i[q]] -= w_ie
        if PROFILE:
            prof[5] += cycles() - c0
    return t_now + n_steps


# ---------------------------------------------------------------------------------------------
# one compiled loop per learning rule
# ---------------------------------------------------------------------------------------------

_PACKAGE = pathlib.Path(__file__).resolve().parents[1]
_KERNELS: dict[tuple, object] = {}


def _specialise(template, suffix: str, bindings: dict, cache: bool, **options):
    """``template`` compiled with extra global ``bindings`` (a copy of the function with its own
    globals and qualified name, so that numba caches each specialisation in its own file)."""
    g = dict(template.__globals__)
    g.update(bindings)
    f = types.FunctionType(template.__code__, g, template.__name__, template.__defaults__, template.__closure__)
    f.__qualname__ = f"{template.__name__}__{suffix}"
    f.__doc__ = template.__doc__
    return kernel(f, **options) if cache else njit(**options)(f)


def kernel_for(rule, profile: bool = False):
    """The compiled loop :func:`run_steps` for one registered rule (``STDPParams.rule``); with
    ``profile`` the loop adds the cycles of each section to ``Scratch.prof`` (``cycles.SECTIONS``).

    The rule's ``on_pre`` and ``on_post`` (numba functions in its ``plasticity/stdp_*.py`` module) are
    bound as the globals ``RULE_PRE`` and ``RULE_POST`` of a copy of the template, so they are inlined
    as the formulas of a single-file loop would be. Each rule's loop is compiled once. Rules shipped
    in the package are cached on disk (:mod:`spikeforge.jit`). Rules defined elsewhere, such as a test
    or a script, are compiled once per process, because a cache could not see their file change."""
    key = (rule.name, id(rule.on_pre), id(rule.on_post), profile)
    if key not in _KERNELS:
        files = {pathlib.Path(inspect.getfile(f.py_func)).resolve() for f in (rule.on_pre, rule.on_post)}
        cache = all(f.is_relative_to(_PACKAGE) for f in files)
        pre = _specialise(_pre_update, rule.name, {"RULE_PRE": rule.on_pre}, cache, inline="always")
        bindings = {"RULE_POST": rule.on_post, "_pre_update": pre, "PROFILE": profile}
        suffix = rule.name + ("__profiled" if profile else "")
        _KERNELS[key] = _specialise(run_steps, suffix, bindings, cache)
    return _KERNELS[key]
