"""Layouts of the compiled engine's input-spike delivery, timed alone (issue 10, part 2).

    python benchmarks/dc_scatter_layouts.py [--sizes 400 6400] [--repeats 4]

The emission scatter of ``dc_numba_kernel.run_steps`` adds each input spike's weight row into a ring
of future conductances, ``ring[t % L + D[i, j], j] += W[i, j]``. Every cell gets at most one term per
spike, so any order of a spike's targets gives the same floats; this script times such orders and
layouts on synthetic input of the engine's statistics (784 inputs, delays U{0..19} steps, 3.3 input
spikes per step for 700 of 1,000 steps, float64 weights) and checks that each fills the same ring:

- ``flat offsets``: the engine's loop (int32 offsets ``D * N + j``, two copies of the ring rows);
- ``int8 delays``: the offset computed from an int8 delay (a quarter of the index bytes);
- ``by delay, W gathered``: per input row the targets sorted by delay, one ring row per bucket;
- ``by delay, W stored by delay``: the same with the weight row stored in that order;
- ``blocks of 8 neurons``: ring as [N / 8, 2 L, 8], so the rows of 8 neurons share a page;
- ``j-blocked over a step``: the step's spikes interleaved per block of 1,024 neurons;
- ``at arrival``: no ring; at each step the spikes arriving now are added from their delay buckets
  (the order Brian2 uses; not the engine's float order when a weight changes in flight);
- ``row add (floor)``: one contiguous ``row += W[i]`` per spike, the cost of only streaming W.

Prints ns per (spike, neuron) element, best of ``--repeats``; nothing is written.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from numba import njit

L = 32  # ring rows per copy (the engine's power of two above the longest delay + 1)
ND = 20  # delays 0..19 steps (U[0, 10) ms at dt = 0.5 ms)


@njit(cache=False)
def _clear(ring, slot):
    for j in range(ring.shape[1]):
        ring[slot, j] = 0.0
        ring[slot + L, j] = 0.0


@njit(cache=False)
def flat_offsets(ptr, idx, W, OFF, ring, row_stride, blocks):
    """The engine's loop (``row_stride = N``), or the ring as [N / 8, 2 L * 8] (``blocks``, 8)."""
    flat = ring.reshape(ring.size)
    n = W.shape[1]
    for s in range(ptr.shape[0] - 1):
        slot = s & (L - 1)
        for k in range(ptr[s], ptr[s + 1]):
            w, o, base = W[idx[k]], OFF[idx[k]], slot * row_stride
            for j in range(n):
                flat[base + o[j]] += w[j]
        if blocks:
            for b in range(ring.shape[0]):
                for jj in range(8):
                    ring[b, slot * 8 + jj] = 0.0
                    ring[b, (slot + L) * 8 + jj] = 0.0
        else:
            _clear(ring, slot)


@njit(cache=False)
def int8_delays(ptr, idx, W, D8, ring):
    flat = ring.reshape(ring.size)
    n = W.shape[1]
    for s in range(ptr.shape[0] - 1):
        slot = s & (L - 1)
        for k in range(ptr[s], ptr[s + 1]):
            w, d, base = W[idx[k]], D8[idx[k]], slot * n
            for j in range(n):
                flat[base + np.int64(d[j]) * n + j] += w[j]
        _clear(ring, slot)


@njit(cache=False)
def by_delay(ptr, idx, W, perm, bst, ring, stored):
    for s in range(ptr.shape[0] - 1):
        slot = s & (L - 1)
        for k in range(ptr[s], ptr[s + 1]):
            i = idx[k]
            w, p = W[i], perm[i]
            for d in range(ND):
                row = ring[slot + d]
                for q in range(bst[i, d], bst[i, d + 1]):
                    row[p[q]] += w[q] if stored else w[p[q]]
        _clear(ring, slot)


@njit(cache=False)
def j_blocked(ptr, idx, W, OFF, ring):
    flat = ring.reshape(ring.size)
    n = W.shape[1]
    for s in range(ptr.shape[0] - 1):
        slot = s & (L - 1)
        for j0 in range(0, n, 1024):
            for k in range(ptr[s], ptr[s + 1]):
                w, o, base = W[idx[k]], OFF[idx[k]], slot * n
                for j in range(j0, min(n, j0 + 1024)):
                    flat[base + o[j]] += w[j]
        _clear(ring, slot)


@njit(cache=False)
def at_arrival(ptr, idx, W, perm, bst, ge, stored):
    for ta in range(ptr.shape[0] - 1):
        for d in range(ND - 1, -1, -1):
            te = ta - d
            if te < 0:
                continue
            for k in range(ptr[te], ptr[te + 1]):
                i = idx[k]
                w, p = W[i], perm[i]
                for q in range(bst[i, d], bst[i, d + 1]):
                    ge[p[q]] += w[q] if stored else w[p[q]]
        for j in range(ge.shape[0]):
            ge[j] *= 0.5


@njit(cache=False)
def row_add(ptr, idx, W, ring):
    for s in range(ptr.shape[0] - 1):
        slot = s & (L - 1)
        for k in range(ptr[s], ptr[s + 1]):
            w, row = W[idx[k]], ring[slot + idx[k] % ND]
            for j in range(w.shape[0]):
                row[j] += w[j]
        _clear(ring, slot)


def size(n: int, repeats: int) -> None:
    rng = np.random.default_rng(0)
    n_in, steps = 784, 1000
    D = rng.integers(0, ND, size=(n_in, n)).astype(np.int32)
    W = rng.random((n_in, n))
    j = np.arange(n)
    OFF = (D * n + j).astype(np.int32)
    OFFB = ((j // 8) * (2 * L * 8) + D * 8 + j % 8).astype(np.int32)
    perm = np.argsort(D, axis=1, kind="stable")
    bst = np.zeros((n_in, ND + 1), np.int32)
    bst[:, 1:] = np.cumsum(np.stack([np.bincount(r, minlength=ND) for r in D]), axis=1)
    Wp = np.take_along_axis(W, perm, axis=1).copy()
    perm = perm.astype(np.int16 if n < 32768 else np.int32)
    counts = np.where(np.arange(steps) < 700, rng.poisson(3.3, steps), 0)
    ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    idx = rng.integers(0, n_in, int(ptr[-1])).astype(np.int64)
    ring = lambda: np.zeros((2 * L, n))  # noqa: E731
    variants = {
        "flat offsets (the engine)": (flat_offsets, (W, OFF, ring(), n, False)),
        "int8 delays": (int8_delays, (W, D.astype(np.int8), ring())),
        "by delay, W gathered": (by_delay, (W, perm, bst, ring(), False)),
        "by delay, W stored by delay": (by_delay, (Wp, perm, bst, ring(), True)),
        "blocks of 8 neurons": (flat_offsets, (W, OFFB, np.zeros(((n + 7) // 8, 2 * L * 8)), 8, True)),
        "j-blocked over a step": (j_blocked, (W, OFF, ring())),
        "at arrival, W gathered": (at_arrival, (W, perm, bst, np.zeros(n), False)),
        "at arrival, W stored by delay": (at_arrival, (Wp, perm, bst, np.zeros(n), True)),
        "row add (floor: streaming W)": (row_add, (W, ring())),
    }
    # the ring-filling variants must agree with the engine's loop after one pass (no clearing yet)
    short = ptr.copy()
    short[short > ptr[ND - 1]] = ptr[ND - 1]
    ref = None
    for name, (f, a) in variants.items():
        if f in (at_arrival, row_add):
            continue
        k = {flat_offsets: 3, by_delay: 2}.get(f, 1)  # position of the ring, from the end
        buf = np.zeros_like(a[-k])
        f(short[:ND], idx, *a[:-k], buf, *a[len(a) - k + 1 :])  # 19 steps: no row consumed yet
        blocked = f is flat_offsets and a[-1]
        got = buf.reshape(-1, 2 * L, 8).transpose(1, 0, 2).reshape(2 * L, -1)[:, :n] if blocked else buf
        ref = got if ref is None else ref
        if not np.array_equal(got, ref):
            raise SystemExit(f"{name}: different ring contents")
    elements = len(idx) * n
    for name, (f, a) in variants.items():
        f(ptr, idx, *a)
        best = np.inf
        for _ in range(repeats):
            t0 = time.process_time()
            f(ptr, idx, *a)
            best = min(best, time.process_time() - t0)
        print(f"N = {n:5d}  {name:32s} {best / elements * 1e9:6.2f} ns per element", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[400, 6400])
    ap.add_argument("--repeats", type=int, default=4)
    args = ap.parse_args(argv)
    for n in args.sizes:
        size(n, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
