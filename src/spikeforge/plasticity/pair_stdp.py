"""Pair-based STDP with "update cycles" (vgp23/olfactory_network, reference §1.7), and a
trace-based alternative.

Kernel, with ``dt = t_post - t_pre`` in time steps and **positive** time constants::

    dt >= 0:  dw = +a_plus  * exp(-dt / tau_plus)      (potentiation)
    dt <  0:  dw = -a_minus * exp(+dt / tau_minus)     (depression)

Mapping from the original (``assistant_fixed.py stdp_weights``), which writes
``a+ exp(dt/tau+)`` and ``a- exp(-dt/tau-)`` with **negative** taus and a negative ``a-``:
``a_plus = a+``, ``a_minus = -a-``, ``tau_plus = -tau+``, ``tau_minus = -tau-``. The report's values
``a+ = 1e-7, a- = -1e-7, tau+ = -4, tau- = -10`` are ``a_plus = a_minus = 1e-7, tau_plus = 4,
tau_minus = 10``. The original's two-parameter form (``stdp_learning_rate = lr``,
``stdp_tau_combined = c``) is :meth:`PairSTDPParams.from_combined`: ``a_plus = a_minus = lr``,
``tau_plus = 2|c|, tau_minus = 5|c|`` (the 2:5 ratio applies to the taus only; reference §1.7(b)).

**Update cycle** (the report's description, §1.7(c)): per synapse and sample, the first spike of
either neuron opens a cycle; if the opening neuron fires again the cycle's start moves to the new
spike; the partner's spike closes it with one update ``dw(t_post - t_pre)`` using both neurons'
latest spike times. Pre and post spikes in the same step close (or, on a closed synapse, open and
close) a cycle with ``dt = 0``. This is the variant implemented here. It differs from the
original's counter in two cases, both listed in reference §1.7(c): the original also fires an
update when one neuron spikes twice before its partner (using the partner's stale time stamp), and a
synapse whose counter jumps to 3 (both neurons firing in one step on an open cycle) is never updated
again in that batch. Cycles start closed at each sample.

``ignore_zeros``: pairs with ``dt = 0`` are dropped (their cycle still closes). Updates of a time
step are **averaged over the batch** (zeros count), then bounded: ``bounds = "none"`` (the
original), ``"clip"`` to ``[w_min, w_max]`` after the update, or ``"soft"`` (potentiation scaled by
``w_max - w``, depression by ``w - w_min``, per synapse, before averaging).

``rule = "trace"`` is the library's trace-based pair STDP instead (all-to-all pairing with
exponential traces, as the trace rules of :mod:`spikeforge.plasticity.stdp`):
``x_pre <- x_pre e^{-1/tau_plus} + s_pre``, ``x_post <- x_post e^{-1/tau_minus} + s_post``,
``dw = a_plus x_pre s_post - a_minus x_post(t-1) s_pre`` (same kernel for isolated pairs).
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import numba
import numpy as np
import torch
from pydantic import Field, model_validator

from ..config import ConfigError, Params


class PairSTDPParams(Params):
    """Defaults: the report's a± = 1e-7 (below lava's 8-bit weight step, so likely a no-op; reference
    §1.4, §1.7) is raised to 1e-5, and weights are clipped to [0, 0.02] (twice the largest initial
    PN -> KC weight of the olfaction network) so that potentiation cannot saturate the KCs, the
    failure the report describes (§1.7(f)); see docs/olfaction.md."""

    rule: Literal["cycle", "trace"] = "cycle"
    a_plus: float = Field(1e-5, ge=0.0, description="potentiation amplitude")
    a_minus: float = Field(1e-5, ge=0.0, description="depression amplitude (positive; the original's -a-)")
    tau_plus_steps: float = Field(4.0, gt=0.0, description="potentiation decay, steps (original: -4)")
    tau_minus_steps: float = Field(10.0, gt=0.0, description="depression decay, steps (original: -10)")
    ignore_zeros: bool = Field(True, description="drop pairs with dt = 0")
    bounds: Literal["none", "clip", "soft"] = "clip"
    w_min: float = 0.0
    w_max: float = Field(0.02, description="upper bound (clip / soft)")

    @model_validator(mode="after")
    def _check(self) -> PairSTDPParams:
        if self.bounds != "none" and not self.w_max > self.w_min:
            raise ValueError(f"w_max = {self.w_max} must be > w_min = {self.w_min} when bounds = '{self.bounds}'")
        return self

    @classmethod
    def from_combined(cls, stdp_learning_rate: float, stdp_tau_combined: float, **kw) -> PairSTDPParams:
        """The original's two parameters: a± = lr, tau+ = 2|c|, tau- = 5|c| (c may be negative, as
        in the original, where it must be)."""
        if stdp_learning_rate < 0:
            raise ConfigError(f"stdp_learning_rate = {stdp_learning_rate} must be >= 0")
        if stdp_tau_combined == 0:
            raise ConfigError("stdp_tau_combined = 0: must be non-zero (the original used -2)")
        c = abs(stdp_tau_combined)
        return cls.from_dict(
            {
                "a_plus": stdp_learning_rate,
                "a_minus": stdp_learning_rate,
                "tau_plus_steps": 2 * c,
                "tau_minus_steps": 5 * c,
                **kw,
            }
        )

    def kernel(self, dt: np.ndarray | float) -> np.ndarray:
        """``dw(dt)`` without bounds."""
        dt = np.asarray(dt, dtype=np.float64)
        return np.where(
            dt >= 0, self.a_plus * np.exp(-dt / self.tau_plus_steps), -self.a_minus * np.exp(dt / self.tau_minus_steps)
        )


class CycleState:
    """Per-sample STDP state: last spike times and the open/closed state of every synapse
    (``open [batch, n_synapses]`` int8, 0 closed, 1 opened by pre, 2 opened by post, in the order
    of the synapses row by row of the transposed weight ``[n_pre, n_post]``; made at the first
    update, when the synapses are known), and a table of the kernel at whole steps."""

    def __init__(self, batch: int, n_pre: int, n_post: int):
        self.last_pre = np.full((batch, n_pre), -1, dtype=np.int32)  # -1: no spike yet
        self.last_post = np.full((batch, n_post), -1, dtype=np.int32)
        self.open: np.ndarray | None = None
        self.n2: np.ndarray | None = None  # dense blocks: per sample and pre neuron, synapses opened by post
        self.x_pre = np.zeros((batch, n_pre), dtype=np.float32)  # traces (rule = "trace")
        self.x_post = np.zeros((batch, n_post), dtype=np.float32)
        self.table = np.zeros(0)  # _pair's amplitude at dt = -t_max .. t_max
        self.table_key: tuple = ()

    def kernel_table(self, t: int, p: PairSTDPParams) -> tuple[np.ndarray, int]:
        """The kernel without bounds at every whole dt in ``[-t_max, t_max]``, ``t_max > t`` (grown
        when ``t`` outgrows it)."""
        t_max = (len(self.table) - 1) // 2
        key = (p.a_plus, p.a_minus, p.tau_plus_steps, p.tau_minus_steps)
        if t >= t_max or key != self.table_key:
            t_max = max(t + 1, 2 * t_max, 64)
            self.table, self.table_key = _kernel_table(t_max, *key), key
        return self.table, t_max


@numba.njit(cache=True)
def _kernel_table(t_max, ap, am, tp, tm):
    """``dw(dt)`` for ``dt = -t_max .. t_max`` (index ``dt + t_max``): the same float64 expressions
    as the per-pair code had (``a+ exp(-dt/tau+)``, ``-a- exp(dt/tau-)``), so the same values."""
    out = np.empty(2 * t_max + 1)
    for k in range(2 * t_max + 1):
        dt = k - t_max
        if dt >= 0:
            out[k] = ap * math.exp(-dt / tp)
        else:
            out[k] = -am * math.exp(dt / tm)
    return out


@numba.njit(cache=True)
def _cycle_kernel(pre, post, t, last_pre, last_post, open_, w, dwq, table, t_max, ignore0, soft, wmin, wmax, syn):
    """pre [B, n_pre] / post [B, n_post] uint8 spikes at step t; ``w [n_post, n_pre]`` (for soft
    bounds); ``dwq [n_synapses]`` accumulates each synapse's updates over the batch (in the order
    of the samples). The synapses, ``syn = (indptr, idx, cindptr, cidx, cpos)``: synapse ``q`` of
    pre neuron ``i`` (``indptr[i] <= q < indptr[i + 1]``) reaches post neuron ``idx[q]``; post
    neuron ``j``'s synapses come from ``cidx[r]`` and are numbered ``cpos[r]``
    (``cindptr[j] <= r < cindptr[j + 1]``). A pre spike visits its neuron's synapses, a post spike
    those of its neuron whose pre neuron is silent; every synapse's cycle is independent of the
    others' and changes at most once per sample and step. The visits have no data-dependent
    branches (a visit that changes nothing adds 0.0 to ``dwq``, which is never -0.0, and looks up
    a table entry it does not use: hence ``t_max > t``); a neuron that never spiked has last spike
    time -1 (so that ``dt == 0`` tells a spike in this step)."""
    indptr, idx, cindptr, cidx, cpos = syn
    batch, n_pre = pre.shape
    n_post = post.shape[1]
    post_idx = np.empty(n_post, dtype=np.int64)
    keep0 = not ignore0
    for b in range(batch):
        n_sp = 0
        for j in range(n_post):
            sp = post[b, j] != 0
            post_idx[n_sp] = j
            n_sp += sp
            last_post[b, j] = t if sp else last_post[b, j]
        for i in range(n_pre):
            if pre[b, i]:
                last_pre[b, i] = t
                for q in range(indptr[i], indptr[i + 1]):
                    j = idx[q]
                    dt = last_post[b, j] - t  # 0: the post neuron spikes now
                    close = (dt == 0) | (open_[b, q] == 2)
                    open_[b, q] = 0 if close else 1  # closes, opens, or moves the start
                    d = table[dt + t_max]
                    if soft:
                        d *= (wmax - w[j, i]) if dt >= 0 else (w[j, i] - wmin)
                    dwq[q] += d if close & (keep0 | (dt != 0)) else 0.0
        for k in range(n_sp):  # silent pre neurons: only their synapses onto spiking post neurons change
            j = post_idx[k]
            for r in range(cindptr[j], cindptr[j + 1]):
                i, q = cidx[r], cpos[r]
                dt = t - last_pre[b, i]  # 0: the pre neuron spikes now (its synapse is done)
                st = open_[b, q]
                open_[b, q] = st if dt == 0 else (0 if st == 1 else 2)  # closes, or opens (2 stays 2)
                d = table[dt + t_max]
                if soft:
                    d *= (wmax - w[j, i]) if dt >= 0 else (w[j, i] - wmin)
                dwq[q] += d if (dt != 0) & (st == 1) else 0.0


@numba.njit(cache=True)
def _cycle_kernel_dense(pre, post, t, last_pre, last_post, open_, n2, w, dwq, table, t_max, ignore0, soft, wmin, wmax):
    """:func:`_cycle_kernel` for a dense block (synapse ``q = i n_post + j``), with the same state
    and the same updates in the same order, plus ``n2 [B, n_pre]``: the synapses of pre neuron
    ``i`` opened by their post neuron. Where that is 0 a pre spike closes only the pairs with post
    neurons spiking now and opens the rest of its row at once, and a visit that changes nothing is
    skipped: about 2x faster than the branch-free visits on a dense block's correlated spikes."""
    batch, n_pre = pre.shape
    n_post = post.shape[1]
    post_idx = np.empty(n_post, dtype=np.int64)
    keep0 = not ignore0
    d0 = table[t_max]
    for b in range(batch):
        n_sp = 0
        for j in range(n_post):
            if post[b, j] != 0:
                last_post[b, j] = t
                post_idx[n_sp] = j
                n_sp += 1
        for i in range(n_pre):
            if pre[b, i]:
                last_pre[b, i] = t
                row = i * n_post
                if n2[b, i] == 0:  # every synapse of the row is closed or opened by pre
                    for j in range(n_post):
                        open_[b, row + j] = 1
                    for k in range(n_sp):
                        j = post_idx[k]
                        open_[b, row + j] = 0
                        if keep0:
                            d = d0 * (wmax - w[j, i]) if soft else d0
                            dwq[row + j] += d
                else:
                    for j in range(n_post):
                        q = row + j
                        dt = last_post[b, j] - t
                        if dt == 0 or open_[b, q] == 2:
                            open_[b, q] = 0
                            if keep0 or dt != 0:
                                d = table[dt + t_max]
                                if soft:
                                    d *= (wmax - w[j, i]) if dt >= 0 else (w[j, i] - wmin)
                                dwq[q] += d
                        else:
                            open_[b, q] = 1
                    n2[b, i] = 0
        for k in range(n_sp):
            j = post_idx[k]
            for i in range(n_pre):
                if pre[b, i]:
                    continue
                q = i * n_post + j
                st = open_[b, q]
                if st == 1:
                    open_[b, q] = 0
                    dt = t - last_pre[b, i]
                    d = table[dt + t_max]
                    if soft:
                        d *= wmax - w[j, i]
                    dwq[q] += d
                elif st == 0:
                    open_[b, q] = 2
                    n2[b, i] += 1


@numba.njit(cache=True)
def _scatter_rows(dwq, indptr, idx, out):
    """``out[idx[q], i] = dwq[q]`` for the synapses ``q`` of every pre neuron ``i``."""
    for i in range(len(indptr) - 1):
        for q in range(indptr[i], indptr[i + 1]):
            out[idx[q], i] = dwq[q]


Synapses = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _build_synapses(has: np.ndarray) -> Synapses:
    """``has [n_pre, n_post]`` -> the kernel's ``syn`` (synapses numbered row by row)."""
    rows, cols = np.nonzero(has)  # row-major: ascending column within each row
    n_pre, n_post = has.shape
    indptr = np.zeros(n_pre + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_pre), out=indptr[1:])
    order = np.lexsort((rows, cols))  # by column, then row
    cindptr = np.zeros(n_post + 1, dtype=np.int64)
    np.cumsum(np.bincount(cols, minlength=n_post), out=cindptr[1:])
    return indptr, cols.astype(np.int64), cindptr, rows[order].astype(np.int64), order.astype(np.int64)


@functools.lru_cache(maxsize=8)
def _dense_synapses(n_pre: int, n_post: int) -> Synapses:
    return _build_synapses(np.ones((n_pre, n_post), dtype=np.uint8))


_MASKS: dict[int, tuple[torch.Tensor, Synapses]] = {}


def _synapses(shape: tuple[int, int], mask: torch.Tensor | None) -> Synapses:
    """The kernel's ``syn`` for a weight of ``shape`` [n_pre, n_post] (transposed); a mask's index
    lists are built once per mask tensor (masks are fixed)."""
    if mask is None:
        return _dense_synapses(*shape)
    hit = _MASKS.get(id(mask))
    if hit is None or hit[0] is not mask:
        has = np.ascontiguousarray(mask.detach().cpu().numpy().T != 0).astype(np.uint8)
        hit = (mask, _build_synapses(has))
        if len(_MASKS) >= 8:
            _MASKS.clear()
        _MASKS[id(mask)] = hit
    return hit[1]


def _spikes_u8(s: torch.Tensor) -> np.ndarray:
    a = s.detach().cpu().numpy()
    return a if a.dtype == np.uint8 else a.astype(np.uint8)


def stdp_update(
    weight: torch.Tensor,
    pre: torch.Tensor,
    post: torch.Tensor,
    t: int,
    state: CycleState,
    p: PairSTDPParams,
    apply: bool = True,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Apply one step of STDP in place to ``weight`` [n_post, n_pre] (CPU float32) from spikes
    ``pre`` [B, n_pre] and ``post`` [B, n_post] at step ``t``; returns the batch-mean ``dw``.
    ``apply=False``: only returns it (``state`` advances); :func:`apply_stdp` applies it later
    (data-parallel training averages it over the ranks first). ``mask`` [n_post, n_pre]: the
    synapses that exist (non-zero); ``dw`` is 0 elsewhere."""
    batch = pre.shape[0]
    if p.rule == "cycle":
        if t < 0:
            raise ValueError(f"t = {t}: STDP steps count from 0")
        w_np = weight.detach().cpu().numpy()  # [n_post, n_pre]
        syn = _synapses((w_np.shape[1], w_np.shape[0]), mask)
        n_syn = len(syn[1])
        if state.open is None:
            state.open = np.zeros((batch, n_syn), dtype=np.int8)
            state.n2 = np.zeros((batch, w_np.shape[1]), dtype=np.int32)
        if state.open.shape != (batch, n_syn):
            raise ValueError(f"this CycleState tracks {state.open.shape} synapses, not {(batch, n_syn)}")
        table, t_max = state.kernel_table(int(t), p)
        dwq = np.zeros(n_syn, dtype=w_np.dtype)
        if mask is None and state.n2 is not None:
            _cycle_kernel_dense(
                _spikes_u8(pre), _spikes_u8(post), int(t), state.last_pre, state.last_post, state.open, state.n2,
                w_np, dwq, table, t_max, p.ignore_zeros, p.bounds == "soft", p.w_min, p.w_max,
            )  # fmt: skip
        else:
            _cycle_kernel(
                _spikes_u8(pre),
                _spikes_u8(post),
                int(t),
                state.last_pre,
                state.last_post,
                state.open,
                w_np,
                dwq,
                table,
                t_max,
                p.ignore_zeros,
                p.bounds == "soft",
                p.w_min,
                p.w_max,
                syn,
            )
        dw = np.zeros(w_np.shape, dtype=w_np.dtype)
        _scatter_rows(dwq, syn[0], syn[1], dw)
        dw_t = torch.from_numpy(dw).to(weight.device) / batch
    else:
        sp, so = pre.float(), post.float()
        xp = torch.from_numpy(state.x_pre).to(weight.device)
        xo = torch.from_numpy(state.x_post).to(weight.device)
        xp = xp * math.exp(-1.0 / p.tau_plus_steps) + sp
        ltp = p.a_plus * so.t() @ xp  # post spikes x pre traces (including same-step pre: dt = 0)
        ltd = p.a_minus * (xo * math.exp(-1.0 / p.tau_minus_steps)).t() @ sp  # earlier post x pre spikes
        if p.ignore_zeros:
            ltp = ltp - p.a_plus * so.t() @ sp
        if p.bounds == "soft":
            ltp = ltp * (p.w_max - weight)
            ltd = ltd * (weight - p.w_min)
        dw_t = (ltp - ltd) / batch
        if mask is not None:
            dw_t = dw_t * (mask != 0).to(dw_t.dtype)
        state.x_pre[:] = xp.cpu().numpy()
        state.x_post[:] = (xo * math.exp(-1.0 / p.tau_minus_steps) + so).cpu().numpy()
    if apply:
        apply_stdp(weight, dw_t, p)
    return dw_t


def apply_stdp(weight: torch.Tensor, dw: torch.Tensor, p: PairSTDPParams) -> None:
    """``weight += dw`` in place, then the bounds (``"clip"``)."""
    with torch.no_grad():
        weight += dw.to(weight.dtype)
        if p.bounds == "clip":
            weight.clamp_(p.w_min, p.w_max)
