"""The pair-STDP cycle kernel against the kernel it replaced (main at 814b8cc, copied below
unchanged but for the names): the same ``dw`` and state, bit for bit, for dense and masked blocks,
both bounds modes with weights, both ``ignore_zeros``, in float32 and float64."""

import math

import numba
import numpy as np
import pytest
import torch

from spikeforge.plasticity.pair_stdp import CycleState, PairSTDPParams, stdp_update


@numba.njit
def _old_pair(dt, w, ap, am, tp, tm, soft, wmin, wmax):
    if dt >= 0:
        d = ap * math.exp(-dt / tp)
        if soft:
            d *= wmax - w
    else:
        d = -am * math.exp(dt / tm)
        if soft:
            d *= w - wmin
    return d


@numba.njit
def _old_cycle_kernel(
    pre, post, t, last_pre, last_post, open_, n2, w, dw, ap, am, tp, tm, ignore0, soft, wmin, wmax, syn
):
    """pre [B, n_pre] / post [B, n_post] uint8 spikes at step t; w, dw [n_pre, n_post] float32
    (transposed, so that the synapses of one pre neuron are contiguous); ``n2[b, i]`` counts the
    synapses of pre neuron i opened by their post neuron (when it is 0, a pre spike only has to
    close the pairs with post neurons spiking now and can open the rest of its row at once). The
    synapses that exist, ``syn = (indptr, idx, has, cindptr, cidx)``: ``has [n_pre, n_post]`` uint8,
    per pre neuron ``i`` its post neurons ``idx[indptr[i]:indptr[i + 1]]`` and per post neuron ``j``
    its pre neurons ``cidx[cindptr[j]:cindptr[j + 1]]``, ascending (every one for a dense block); the
    others are skipped (their cycles never open), which is what makes a sparse block cheap. Each
    synapse's cycle is independent of the others', so the order of the loops does not matter."""
    indptr, idx, has, cindptr, cidx = syn
    batch, n_pre = pre.shape
    n_post = post.shape[1]
    post_idx = np.empty(n_post, dtype=np.int64)
    for b in range(batch):
        n_sp = 0
        for j in range(n_post):
            if post[b, j]:
                last_post[b, j] = t
                post_idx[n_sp] = j
                n_sp += 1
        for i in range(n_pre):
            if pre[b, i]:
                last_pre[b, i] = t
                if n2[b, i] == 0:  # no cycle opened by a post neuron: only same-step pairs close
                    for q in range(indptr[i], indptr[i + 1]):
                        open_[b, i, idx[q]] = 1
                    for k in range(n_sp):
                        j = post_idx[k]
                        if not has[i, j]:
                            continue
                        open_[b, i, j] = 0
                        if not ignore0:
                            dw[i, j] += _old_pair(0, w[i, j], ap, am, tp, tm, soft, wmin, wmax)
                else:
                    for q in range(indptr[i], indptr[i + 1]):
                        j = idx[q]
                        st = open_[b, i, j]
                        if post[b, j] or st == 2:  # closes with dt = last_post - t (0 if both now)
                            open_[b, i, j] = 0
                            dt = last_post[b, j] - t
                            if not (ignore0 and dt == 0):
                                dw[i, j] += _old_pair(dt, w[i, j], ap, am, tp, tm, soft, wmin, wmax)
                        else:
                            open_[b, i, j] = 1  # opens, or moves the start (last_pre is now t)
                    n2[b, i] = 0
        for k in range(n_sp):  # silent pre neurons: only their synapses onto spiking post neurons change
            j = post_idx[k]
            for q in range(cindptr[j], cindptr[j + 1]):
                i = cidx[q]
                if not pre[b, i]:
                    st = open_[b, i, j]
                    if st == 1:
                        open_[b, i, j] = 0
                        dt = t - last_pre[b, i]
                        if not (ignore0 and dt == 0):
                            dw[i, j] += _old_pair(dt, w[i, j], ap, am, tp, tm, soft, wmin, wmax)
                    elif st == 0:
                        open_[b, i, j] = 2
                        n2[b, i] += 1


tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _old_syn(has):
    def csr(h):
        rows, cols = np.nonzero(h)
        indptr = np.zeros(h.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=h.shape[0]), out=indptr[1:])
        return indptr, cols.astype(np.int64)

    return (*csr(has), has, *csr(np.ascontiguousarray(has.T)))


def _old_update(weight, pre, post, t, st, p, mask):
    """main's stdp_update (rule "cycle", apply=False) with its state in the dict ``st``."""
    w_np = np.ascontiguousarray(weight.numpy().T)
    has = np.ones(w_np.shape, np.uint8) if mask is None else np.ascontiguousarray(mask.numpy().T != 0).astype(np.uint8)
    dw = np.zeros_like(w_np)
    _old_cycle_kernel(
        pre.numpy().astype(np.uint8),
        post.numpy().astype(np.uint8),
        int(t),
        st["last_pre"],
        st["last_post"],
        st["open"],
        st["n2"],
        w_np,
        dw,
        p.a_plus,
        p.a_minus,
        p.tau_plus_steps,
        p.tau_minus_steps,
        p.ignore_zeros,
        p.bounds == "soft",
        p.w_min,
        p.w_max,
        _old_syn(has),
    )
    return torch.from_numpy(dw.T) / pre.shape[0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("bounds, ignore_zeros", [("clip", True), ("soft", False), ("none", False)])
def test_cycle_kernel_equals_the_kernel_it_replaced(dtype, masked, bounds, ignore_zeros):
    rng = np.random.default_rng(7)
    T, B, n_pre, n_post = 60, 6, 9, 40
    p = PairSTDPParams(a_plus=1e-2, a_minus=7e-3, tau_plus_steps=3.0, bounds=bounds, ignore_zeros=ignore_zeros)
    p = p.replace(w_max=0.3)
    mask = torch.from_numpy(rng.random((n_post, n_pre)) < 0.3).to(dtype) if masked else None
    w = torch.from_numpy(rng.random((n_post, n_pre)) * 0.3).to(dtype)
    st = CycleState(B, n_pre, n_post)
    old = {
        "last_pre": np.zeros((B, n_pre), np.int32),
        "last_post": np.zeros((B, n_post), np.int32),
        "open": np.zeros((B, n_pre, n_post), np.int8),
        "n2": np.zeros((B, n_pre), np.int32),
    }
    rates = rng.random(T) * 0.5  # bursts and silences
    changed = 0
    for t in range(T):
        pre = torch.from_numpy(rng.random((B, n_pre)) < rates[t]).to(dtype)
        post = torch.from_numpy(rng.random((B, n_post)) < rates[(t * 7) % T]).to(dtype)
        want = _old_update(w, pre, post, t, old, p, mask)
        got = stdp_update(w, pre, post, t, st, p, apply=False, mask=mask)
        assert got.dtype == want.dtype and torch.equal(got, want), t
        changed += int((got != 0).sum())
        w = (w + got * 5).clamp(0, 0.3)  # the weights move, for the soft bounds
    assert changed > 100
    for new, old_t in ((st.last_pre, old["last_pre"]), (st.last_post, old["last_post"])):
        np.testing.assert_array_equal(np.maximum(new, 0), old_t)  # -1: no spike yet (the old kernel: 0)
    has = np.ones((n_pre, n_post), bool) if mask is None else mask.numpy().T != 0
    np.testing.assert_array_equal(st.open, old["open"][:, has])  # the synapses row by row


def test_cycle_state_refuses_another_block_and_negative_steps():
    p = PairSTDPParams()
    st = CycleState(2, 3, 4)
    stdp_update(torch.zeros(4, 3), torch.ones(2, 3), torch.ones(2, 4), 0, st, p)
    with pytest.raises(ValueError, match="tracks"):
        stdp_update(torch.zeros(4, 3), torch.ones(2, 3), torch.ones(2, 4), 1, st, p, mask=torch.eye(4, 3))
    with pytest.raises(ValueError, match="t = -1"):
        stdp_update(torch.zeros(4, 3), torch.ones(2, 3), torch.ones(2, 4), -1, CycleState(2, 3, 4), p)
