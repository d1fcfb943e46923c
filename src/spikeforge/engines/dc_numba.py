"""Compiled exact CPU engine for the Diehl & Cook network (one example at a time).

This module owns the buffers and implements the engine contract (:class:`~.base.DCEngine`); the
per-step loop is :func:`.dc_numba_kernel.run_steps`, which calls the neuron updates of
:mod:`spikeforge.neurons.conductance_lif` and the learning rule's compiled functions
(``plasticity/stdp_*.py``). The presentation protocol is :func:`.base.present_protocol`, shared with
the PyTorch engine.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..config import ConfigError
from ..encoding.poisson import poisson_events
from ..models.diehl_cook import DiehlCookConfig, DiehlCookState
from ..neurons.conductance_lif import compiled_params
from .base import StabilityMonitor, attempt_seed, check_events, check_images, check_state, present_protocol
from .dc_numba_between import normalize_cached, rebuild_in_flight
from .dc_numba_kernel import (
    Delivery,
    Network,
    Rule,
    Scratch,
    Traces,
    kernel_for,
    trace_table,
)


class NumbaDCEngine:
    """Exact sequential engine: one example at a time, the time loop compiled with numba."""

    name = "numba"
    # scheduled pre-spike updates per step (None: max(1024, 4N); 0: no buckets, every step scans)
    bucket_capacity: int | None = None
    # True: the loop counts the cycles of its sections into ``prof`` (benchmarks/profile_dc.py)
    profile = False

    def __init__(self, cfg: DiehlCookConfig, state: DiehlCookState, seed: int = 0, device=None):
        check_state(cfg, state)
        self.cfg, self.seed = cfg, seed
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
        n_delay = self.n_delay = int(self.delays.max(initial=0)) + 1
        # slots of the delay rings (input history, scheduled updates, delivery) and of each input's
        # spike-time ring: a power of two above the longest delay + 1, so that indices wrap with a mask
        slots = 1 << int(n_delay).bit_length()
        # compact copies of the delays: by input row (delivery) and by neuron row (STDP)
        small = np.int8 if n_delay <= 127 else np.int16 if n_delay <= 32767 else np.int32
        self.d_rows = np.ascontiguousarray(self.delays, dtype=small)
        # flat offsets of the delivery ring (delay row, neuron column) for each synapse (int32 offsets
        # beat offsets computed from the int8 delays: benchmarks/ab_dc_interleaved.py, 5 % at N = 6400)
        wide = np.int32 if 2 * slots * n < 2**31 else np.int64
        d_wide: Any = self.delays.astype(wide)
        self.off = np.ascontiguousarray(d_wide * n + np.arange(n, dtype=wide))
        self.d_cols = np.ascontiguousarray(self.delays.T, dtype=small)
        self.hist_idx = np.zeros((slots, n_in), np.int32)
        self.hist_n = np.zeros(slots, np.int32)
        self.ne = compiled_params(cfg.exc, dt)
        self.ni = compiled_params(cfg.inh, dt)
        self.rule = stdp.rule
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
        self.prof = np.zeros(8, np.int64)
        # column sums kept between normalisations (normalize_cached); all columns dirty at first
        self.col_sums = np.zeros(n)
        self.col_dirty = np.ones(n, np.bool_)
        self.col_scratch = np.zeros(n, np.int64)
        self.col_fac = np.zeros(n)
        self.monitor = StabilityMonitor(cfg)
        self.reset_dynamics()

    def set_rate_scale(self, scale: float) -> None:
        self.rule_prm = self.cfg.stdp.scaled(scale).kernel_params()
        self._bind()

    _rec = (np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(1, np.int64))

    def start_recording(self, capacity: int) -> None:
        """Record excitatory spikes (global step, neuron) into a buffer of ``capacity`` events;
        spikes beyond it are dropped (memory is bounded by the cap, not by run length)."""
        self._rec = (np.zeros(capacity, np.int64), np.zeros(capacity, np.int32), np.zeros(1, np.int64))
        self._bind()

    def stop_recording(self) -> tuple[np.ndarray, np.ndarray]:
        """The recorded ``(steps, neurons)`` since :meth:`start_recording`; recording stops."""
        rec_t, rec_j, rec_n = self._rec
        n = int(rec_n[0])
        self._rec = NumbaDCEngine._rec
        self._bind()
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
        self.ring_live = np.zeros(len(self.ring_ge), np.bool_)  # rows that may be non-zero
        self.recent = np.zeros(n + 1, np.int64)
        # buckets of scheduled pre-spike updates, one per step of delay; an overflowing bucket
        # falls back to scanning that step's arrivals
        cap = max(1024, 4 * n) if self.bucket_capacity is None else self.bucket_capacity
        self.bk_i = np.zeros((self.hist_n.shape[0], cap), np.int32)
        self.bk_j = np.zeros((self.hist_n.shape[0], cap), np.int32)
        self.bk_n = np.zeros(self.hist_n.shape[0], np.int64)
        self.bk_over = np.zeros(self.hist_n.shape[0], np.bool_)
        self._bind()

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
        self.ring_live[:] = True  # any loaded ring row may be non-zero
        return True

    def _bind(self) -> None:
        """Group the buffers into the loop's argument tuples (again whenever an array is replaced:
        reset, a new learning-rate scale, recording on or off) and pick the rule's loop."""
        self._loop = kernel_for(self.rule, self.profile)
        self._args = (
            Network(
                (self.v_e, self.ge_e, self.gi_e, self.theta, self.since_e)
                + (self.v_i, self.ge_i, self.gi_i, self.since_i, self.inh_active, self.inh_is_active),
                self.ne,
                self.ni,
                float(self.cfg.network.w_ei),
                float(self.cfg.network.w_ie),
                self.monitor.stats["exc"],
                self.monitor.stats["inh"],
            ),
            Delivery(
                self.W,
                self.off,
                self.d_cols,
                self.hist_idx,
                self.hist_n,
                self.ring_ge,
                self.col_dirty,
                self.ring_live,
                self.n_delay,
            ),
            Rule(self.rule_prm, self.trace_set, self.tab_pre, self.tab_post1, self.tab_post2),
            Traces(*(getattr(self, k) for k in Traces._fields)),
            Scratch(self.spk_e, self.spk_i, *self._rec, self.prof),
        )

    def _run(self, n_steps, ptr, idx, learning, counts):
        self.t = self._loop(n_steps, ptr, idx, learning, counts, self.t, *self._args)

    def run_events(self, ptr, idx, learning: bool, n_steps: int | None = None) -> np.ndarray:
        """Run one phase driven by CSR input events; returns excitatory spike counts."""
        ptr, idx = check_events(ptr, idx, self.cfg.network.n_input)
        n_steps = len(ptr) - 1 if n_steps is None else n_steps
        if not 0 <= n_steps <= len(ptr) - 1:
            raise ValueError(f"n_steps = {n_steps} must be in [0, {len(ptr) - 1}] (the steps that ptr describes)")
        t_start = self.t
        counts = self._phase(n_steps, ptr, idx, learning)
        self.monitor.check(["the input given to run_events()"], t_start)
        return counts

    def stability(self) -> dict:
        """Integration counters since the engine was built (:class:`.base.StabilityMonitor`)."""
        return self.monitor.report()

    def _phase(self, n_steps, ptr, idx, learning) -> np.ndarray:
        counts = np.zeros(self.cfg.network.n_neurons, np.int64)
        self._run(n_steps, ptr, idx, learning, counts)
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
            total = self.cfg.network.norm_total
            normalize_cached(self.W, total, self.col_sums, self.col_dirty, self.col_scratch, self.col_fac)
            rebuild_in_flight(self.W, self.d_rows, self.hist_idx, self.hist_n, self.ring_ge, self.ring_live, self.t)

    def present(self, images, learning: bool, keys, names=None) -> tuple[np.ndarray, np.ndarray]:
        """The protocol of :func:`.base.present_protocol`, one example at a time (``names``: how
        messages name each example, e.g. "training example 756 of epoch 0"; by key if None)."""
        pixels, keys = check_images(images, keys, self.cfg.network.n_input)
        names = StabilityMonitor.names(keys, names)
        proto = self.cfg.protocol
        counts = np.zeros((len(keys), self.cfg.network.n_neurons), np.int64)
        attempts = np.zeros(len(keys), np.int64)
        for b, key in enumerate(keys):

            def run_attempt(rates, pending, attempt, key=key):
                ptr, idx = poisson_events(rates[0], proto.example_steps, proto.dt_ms, attempt_seed(key, attempt))
                return self._phase(proto.example_steps, ptr, idx, learning)[None, :]  # events valid by construction

            t_start = self.t
            counts[b : b + 1], attempts[b : b + 1] = present_protocol(
                self, pixels[b : b + 1], [key], learning, run_attempt
            )
            self.monitor.check(names[b : b + 1], t_start)
        return counts, attempts

    def export_state(self) -> DiehlCookState:
        return DiehlCookState(weights=self.W.copy(), theta=self.theta.copy(), delays=self.delays.copy())
