"""Batched PyTorch engine for the Diehl & Cook network, on any device.

Same model description, same schedule within a step and same delays as the compiled engine
(``dc_numba``), written with dense tensors: B examples advance together. With B = 1 it computes the
same sequential dynamics (the equivalence tests compare both on identical input spikes); with
B > 1, theta increments and weight changes of all examples in a step are summed before clipping,
which is a *batched* variant of the learning rule, not the published one. Inference (learning off)
is exact at any batch size.

Pre traces are kept per synapse and per example (``[B, n_in, N]``) and decayed every step while
learning, so training memory is O(B * n_in * N): use the compiled engine for CPU training.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ..encoding.poisson import bernoulli_spikes, events_to_raster, spike_probability
from ..models.diehl_cook import DiehlCookConfig, DiehlCookState
from ..neurons import conductance_lif as cl
from ..neurons.adaptive_threshold import theta_decay, theta_increment
from ..synapses.projections import all_but_self, normalize_columns_torch, one_to_one
from .base import StabilityMonitor, attempt_seed, check_events, check_images, check_state, present_protocol


class TorchDCEngine:
    """Implements :class:`~.base.DCEngine`; the learning rule's tensor forms come from its
    ``plasticity/stdp_*.py`` module (``cfg.stdp.rule``)."""

    name = "torch"

    def __init__(
        self,
        cfg: DiehlCookConfig,
        state: DiehlCookState,
        seed: int = 0,
        device=None,
        dtype: torch.dtype = torch.float64,
    ):
        check_state(cfg, state)
        self.cfg, self.seed = cfg, seed
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = dtype
        kw: dict[str, Any] = dict(device=self.device, dtype=dtype)
        self.W = torch.as_tensor(np.asarray(state.weights), **kw).clone()
        self.theta = torch.as_tensor(np.asarray(state.theta), **kw).clone()
        self.delays_np = np.asarray(state.delays, dtype=np.int32)
        self.D = torch.as_tensor(self.delays_np, dtype=torch.long, device=self.device)
        self.hist_len = int(self.delays_np.max(initial=0)) + 1
        self.fe = cl.decay_factors(cfg.exc, cfg.protocol.dt_ms)
        self.fi = cl.decay_factors(cfg.inh, cfg.protocol.dt_ms)
        dt, sp = cfg.protocol.dt_ms, cfg.stdp
        self.f_pre, self.f_post1, self.f_post2 = (
            math.exp(-dt / tau) for tau in (sp.tau_pre_ms, sp.tau_post1_ms, sp.tau_post2_ms)
        )
        self.stdp = sp  # the rule with the current learning-rate scale (set_rate_scale)
        self._input_index = torch.arange(cfg.network.n_input, device=self.device)[:, None]
        self.batch = 0
        self.t = 0
        self.monitor = StabilityMonitor(cfg)

    def stability(self) -> dict:
        """Integration counters since the engine was built (:class:`.base.StabilityMonitor`)."""
        return self.monitor.report()

    def set_rate_scale(self, scale: float) -> None:
        self.stdp = self.cfg.stdp.scaled(scale)

    # ------------------------------------------------------------------ contract: checkpoints, recording
    def dynamic_state(self) -> dict[str, np.ndarray]:
        """None: this engine's membranes and traces are not checkpointed (a resumed run restarts
        them at rest, see :meth:`load_dynamic_state`)."""
        return {}

    def load_dynamic_state(self, arrays: dict[str, np.ndarray]) -> bool:
        return False

    _rec_cap = 0
    _rec: list[tuple[int, int]] = []  # replaced per recording by start_recording

    def start_recording(self, capacity: int) -> None:
        """Record the excitatory spikes (global step, neuron) of the first example of each batch,
        up to ``capacity`` events."""
        self._rec_cap, self._rec = int(capacity), []

    def stop_recording(self) -> tuple[np.ndarray, np.ndarray]:
        rec, self._rec_cap, self._rec = getattr(self, "_rec", []), 0, []
        steps_ = np.array([t for t, _ in rec], np.int64)
        return steps_, np.array([j for _, j in rec], np.int32)

    # ------------------------------------------------------------------ state
    def reset_dynamics(self, batch: int) -> None:
        cfg = self.cfg
        kw: dict[str, Any] = dict(device=self.device, dtype=self.dtype)
        n_in, n = cfg.network.n_input, cfg.network.n_neurons
        self.batch = batch
        e = cl.initial_state(cfg.exc, (batch, n), dtype=self.dtype, device=self.device)
        self.exc = e._replace(theta=None)
        self.inh = cl.initial_state(cfg.inh, (batch, n), dtype=self.dtype, device=self.device)
        self.hist = torch.zeros((batch, self.hist_len, n_in), **kw)
        self.x_pre = torch.zeros((batch, n_in, n), **kw)
        self.x_post1 = torch.zeros((batch, n), **kw)
        self.x_post2 = torch.zeros((batch, n), **kw)
        self.t = 0

    def _ensure(self, batch: int) -> None:
        if self.batch != batch:
            self.reset_dynamics(batch)

    # ------------------------------------------------------------------ one step
    def _step(self, s_in: torch.Tensor, learning: bool) -> torch.Tensor:
        cfg, sp = self.cfg, self.stdp
        t = self.t
        theta = theta_decay(self.theta, self.fe.theta) if (learning and cfg.exc.adaptive) else self.theta
        exc_in = self.exc._replace(theta=theta.expand_as(self.exc.v))
        stats = self.monitor.stats
        new_e, spk_e = cl.step(exc_in, cfg.exc, self.fe, learning=False, stats=stats["exc"], t=t)
        self.exc = new_e._replace(theta=None)
        if learning and cfg.exc.adaptive:
            theta = theta_increment(theta, spk_e.sum(0).to(self.dtype), cfg.exc.theta_plus_mv)
        self.theta = theta
        self.inh, spk_i = cl.step(self.inh, cfg.inh, self.fi, learning=False, stats=stats["inh"], t=t)
        se = spk_e.to(self.dtype)

        # input spikes enter the delay history; arrivals of spikes emitted D[i, j] steps ago
        self.hist[:, t % self.hist_len] = s_in
        if self.hist_len == 1:
            arrived = s_in[:, :, None].expand(-1, -1, self.W.shape[1])
        else:
            # flat index of (slot, input) per synapse: one index_select instead of slow advanced indexing
            lin = ((t - self.D) % self.hist_len) * self.W.shape[0] + self._input_index
            arrived = self.hist.reshape(self.batch, -1).index_select(1, lin.reshape(-1)).view(self.batch, *self.W.shape)
        ge_e = self.exc.ge + torch.einsum("bij,ij->bj", arrived, self.W)
        if learning:
            self.x_pre.mul_(self.f_pre)
            self.x_post1.mul_(self.f_post1)
            self.x_post2.mul_(self.f_post2)
            if sp.trace_mode == "set":
                self.x_pre = torch.where(arrived > 0, torch.ones_like(self.x_pre), self.x_pre)
            else:
                self.x_pre = self.x_pre + arrived
            rule = sp.rule
            self.W = (self.W + rule.dw_pre(sp, self.W, arrived, self.x_post1, self.x_post2)).clamp_(sp.w_min, sp.w_max)
            self.W = (self.W + rule.dw_post(sp, self.W, self.x_pre, se, self.x_post2)).clamp_(sp.w_min, sp.w_max)
            if sp.trace_mode == "set":
                self.x_post1 = torch.where(spk_e, torch.ones_like(se), self.x_post1)
                self.x_post2 = torch.where(spk_e, torch.ones_like(se), self.x_post2)
            else:
                self.x_post1 = self.x_post1 + se
                self.x_post2 = self.x_post2 + se
        si = spk_i.to(self.dtype)
        self.exc = self.exc._replace(ge=ge_e, gi=self.exc.gi + all_but_self(si, cfg.network.w_ie))
        self.inh = self.inh._replace(ge=self.inh.ge + one_to_one(se, cfg.network.w_ei))
        if self._rec_cap and self._rec_cap > len(self._rec):
            for j in torch.nonzero(spk_e[0]).flatten().tolist()[: self._rec_cap - len(self._rec)]:
                self._rec.append((t, j))
        self.t += 1
        return spk_e

    # ------------------------------------------------------------------ phases
    def run_raster(self, raster: torch.Tensor, learning: bool, active: torch.Tensor | None = None) -> torch.Tensor:
        """Run ``raster [T, B, n_in]`` (bool or 0/1); returns excitatory spike counts ``[B, N]``."""
        raster = torch.as_tensor(raster, device=self.device)
        if raster.dim() == 2:
            raster = raster[:, None, :]
        self._ensure(raster.shape[1])
        counts = torch.zeros((raster.shape[1], self.cfg.network.n_neurons), dtype=torch.long, device=self.device)
        for s in range(raster.shape[0]):
            counts += self._step(raster[s].to(self.dtype), learning).long()
        return counts

    def run_events(self, ptr, idx, learning: bool) -> np.ndarray:
        """Single-example phase from CSR events (the compiled engine's input form)."""
        ptr, idx = check_events(ptr, idx, self.cfg.network.n_input)
        raster = events_to_raster(np.asarray(ptr), np.asarray(idx), self.cfg.network.n_input)
        t_start = self.t
        counts = self.run_raster(torch.from_numpy(raster), learning)[0].cpu().numpy()
        self.monitor.check(["the input given to run_events()"], t_start)
        return counts

    def rest(self, learning: bool) -> None:
        zeros = torch.zeros((self.batch, self.cfg.network.n_input), device=self.device, dtype=self.dtype)
        for _ in range(self.cfg.protocol.rest_steps):
            self._step(zeros, learning)

    def normalize(self) -> None:
        total = self.cfg.network.norm_total
        if total is not None:
            self.W = normalize_columns_torch(self.W, total)

    def present(self, images, learning: bool, keys, names=None) -> tuple[np.ndarray, np.ndarray]:
        """The protocol of :func:`.base.present_protocol`, all examples of the batch at once (one
        generator seeded from the first key per attempt; ``names`` as for the compiled engine)."""
        pixels, keys = check_images(images, keys, self.cfg.network.n_input)
        names = StabilityMonitor.names(keys, names)
        t_start = self.t
        proto = self.cfg.protocol
        self._ensure(len(keys))
        gen = torch.Generator(device=self.device)

        def run_attempt(rates, pending, attempt):
            gen.manual_seed(attempt_seed(keys[0], attempt))
            p = spike_probability(torch.as_tensor(rates, device=self.device, dtype=self.dtype), proto.dt_ms)
            c = torch.zeros((len(keys), self.cfg.network.n_neurons), dtype=torch.long, device=self.device)
            for _ in range(proto.example_steps):
                c += self._step(bernoulli_spikes(p, gen).to(self.dtype), learning).long()
            return c.cpu().numpy()

        out = present_protocol(self, pixels, keys, learning, run_attempt)
        self.monitor.check(names, t_start)
        return out

    def export_state(self) -> DiehlCookState:
        return DiehlCookState(
            weights=self.W.detach().cpu().numpy().copy(),
            theta=self.theta.detach().cpu().numpy().copy(),
            delays=self.delays_np.copy(),
        )
