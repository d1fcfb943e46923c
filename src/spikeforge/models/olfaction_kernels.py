"""Fused element-wise kernels of the olfaction network's CPU step loop (:mod:`.olfaction_fast`).

Each kernel does, element by element and in the same order, the float operations that the
reference loop (:meth:`.olfaction.OlfactionNet.run_batch` with ``net.fast = False``) does as whole
tensor operations, so every value is the same IEEE result: numba compiles without fast-math, so
nothing is reassociated or contracted into a fused multiply-add. Constants come in one array ``k``
of the tensors' dtype, each the float32 (or float64) value that PyTorch makes of the Python scalar
of the reference expression (``(1 - decay) * x`` multiplies by ``float32(1 - decay)``). Only
additions, multiplications, divisions, comparisons and ``abs`` are fused: transcendental functions
(exp, log, sigmoid) stay in PyTorch, whose vectorised versions numba cannot reproduce, and so do
matrix products and reductions other than counts of 0/1 spikes (which are exact in any order).

A layer's step is one call that walks the batch row by row; within a row it does the neuron update,
then the optional passes (readout trace, dropout, surrogate, counts) while the row is in cache.
"""

from __future__ import annotations

import numpy as np

from ..jit import kernel

# indices into the constant array k of the layer kernels
A_I, A_V, THR, P_DROP, KEEP, LAM, OML, SLOPE, ONE, ZERO, A_RP, C_RP = range(12)
N_CONST = 12


@kernel(error_model="numpy")
def _finish_row(i, s, u, k, flags, rnd, filt, sd, sg, u_out, cnt, colsum, s8):
    """The optional outputs of row ``i`` of a layer whose spikes ``s`` and ``u = v - threshold``
    (a row) are known. ``flags``: dropout, readout trace, surrogate (0 none, 1 fast sigmoid),
    store u, counts, column sums, uint8 spikes."""
    si = s[i]
    n = len(si)
    one, zero, lam, oml = k[ONE], k[ZERO], k[LAM], k[OML]
    if flags[1]:  # readout trace: lam f + (1 - lam) s
        fi = filt[i]
        for j in range(n):
            fi[j] = lam * fi[j] + oml * si[j]
    if flags[0]:  # inverted dropout: f * (keep / (1 - p)), keep = rand >= p
        src, ri, di, keep, p_drop = filt[i] if flags[1] else si, rnd[i], sd[i], k[KEEP], k[P_DROP]
        for j in range(n):
            di[j] = src[j] * (keep if ri[j] >= p_drop else zero)
    if flags[2] == 1:  # (1 - lam) * (1.0 / (1.0 + slope |u|) ** 2), pow 2 as x * x, 1/x as reciprocal
        gi, slope = sg[i], k[SLOPE]
        for j in range(n):
            d = slope * abs(u[j]) + one
            gi[j] = oml * (one / (d * d))
    if flags[3]:
        u_out[i, :] = u
    if flags[4]:
        ci = cnt[i]
        for j in range(n):
            ci[j] += si[j]
    if flags[5]:
        for j in range(n):
            colsum[j] += si[j]
    if flags[6]:
        bi = s8[i]
        for j in range(n):
            bi[j] = np.uint8(si[j] != zero)


@kernel(error_model="numpy")
def cuba_layer(mm, bias, cur, vol, s, k, flags, zero_reset, rnd, filt, sd, sg, u_out, cnt, colsum, s8):
    """CUBA LIF, in place: ``cur <- a_i cur + mm + bias``, ``v = a_v vol + cur``, ``u = v - thr``,
    ``s = (u > 0)``, ``vol <- v (1 - s)`` (zero reset) or ``v - thr s``; then :func:`_finish_row`.
    Returns the number of spikes."""
    B, n = s.shape
    u = np.empty(n, dtype=s.dtype)
    one, zero, a_i, a_v, thr = k[ONE], k[ZERO], k[A_I], k[A_V], k[THR]
    total = 0
    for i in range(B):
        mi, ci, vi, si = mm[i], cur[i], vol[i], s[i]
        for j in range(n):
            c = a_i * ci[j] + mi[j]
            c = c + bias[j]
            ci[j] = c
            v = a_v * vi[j] + c
            x = v - thr
            sp = one if x > zero else zero
            u[j] = x
            si[j] = sp
            vi[j] = v * (one - sp) if zero_reset else v - thr * sp
        for j in range(n):
            total += si[j] != zero
        _finish_row(i, s, u, k, flags, rnd, filt, sd, sg, u_out, cnt, colsum, s8)
    return total


@kernel(error_model="numpy")
def decolle_layer(mm, bias, r_tr, s, k, flags, rnd, filt, sd, sg, u_out, cnt, colsum, s8):
    """DECOLLE's LIF, in place: ``r <- a_rp r - c_rp s_prev`` (``s`` holds the previous spikes),
    ``u = mm + bias + r``, ``s = (u > 0)``; then :func:`_finish_row`. Returns the number of spikes."""
    B, n = s.shape
    u = np.empty(n, dtype=s.dtype)
    one, zero, a_rp, c_rp = k[ONE], k[ZERO], k[A_RP], k[C_RP]
    total = 0
    for i in range(B):
        mi, ri, si = mm[i], r_tr[i], s[i]
        for j in range(n):
            r = a_rp * ri[j] - c_rp * si[j]
            ri[j] = r
            x = mi[j] + bias[j]
            x = x + r
            u[j] = x
            si[j] = one if x > zero else zero
        for j in range(n):
            total += si[j] != zero
        _finish_row(i, s, u, k, flags, rnd, filt, sd, sg, u_out, cnt, colsum, s8)
    return total


@kernel(error_model="numpy")
def cuba_input(x, cur, vol, s, k, zero_reset):
    """The input neurons (current encoding): ``cur <- a_i cur + gain x`` (``k[SLOPE]`` holds the
    gain), ``v = a_v vol + cur``, ``s = (v > thr)``, then the reset. Returns the number of spikes."""
    B, n = s.shape
    one, zero, a_i, a_v, thr, gain = k[ONE], k[ZERO], k[A_I], k[A_V], k[THR], k[SLOPE]
    total = 0
    for i in range(B):
        xi, ci, vi, si = x[i], cur[i], vol[i], s[i]
        for j in range(n):
            c = a_i * ci[j] + gain * xi[j]
            ci[j] = c
            v = a_v * vi[j] + c
            sp = one if v > thr else zero
            si[j] = sp
            vi[j] = v * (one - sp) if zero_reset else v - thr * sp
            total += sp != zero
    return total


@kernel(error_model="numpy")
def bernoulli_input(rnd, prob, s, k):
    """``s = (rand < prob)``. Returns the number of spikes."""
    B, n = s.shape
    one, zero = k[ONE], k[ZERO]
    total = 0
    for i in range(B):
        ri, pi, si = rnd[i], prob[i], s[i]
        for j in range(n):
            sp = ri[j] < pi[j]
            si[j] = one if sp else zero
            total += sp
    return total


@kernel(error_model="numpy")
def cuba_trace(s_in, e_i, e_v, a_i, a_v):
    """Eligibility of CUBA inputs: ``e_i <- a_i e_i + s_in``, ``e_v <- a_v e_v + e_i``."""
    B, n = s_in.shape
    for i in range(B):
        si, ii, vi = s_in[i], e_i[i], e_v[i]
        for j in range(n):
            c = a_i * ii[j] + si[j]
            ii[j] = c
            vi[j] = a_v * vi[j] + c


@kernel(error_model="numpy")
def decolle_trace(s_in, p_tr, q_tr, alpha, oma, beta, c_q):
    """DECOLLE's input traces, both from the previous values: ``P <- alpha P + (1 - alpha) Q``,
    ``Q <- beta Q + ((1 - beta) gain) s_in``."""
    B, n = s_in.shape
    for i in range(B):
        si, pi, qi = s_in[i], p_tr[i], q_tr[i]
        for j in range(n):
            pv = alpha * pi[j] + oma * qi[j]
            qi[j] = beta * qi[j] + c_q * si[j]
            pi[j] = pv


@kernel(error_model="numpy")
def local_du(t1, rnd, sg, du, k, dropout):
    """``du = (t1 * drop) * sg`` with ``drop = keep / (1 - p)`` (or 1.0 without dropout)."""
    B, n = du.shape
    one, zero, keep, p_drop = k[ONE], k[ZERO], k[KEEP], k[P_DROP]
    for i in range(B):
        ti, gi, di = t1[i], sg[i], du[i]
        if dropout:
            ri = rnd[i]
            for j in range(n):
                di[j] = (ti[j] * (keep if ri[j] >= p_drop else zero)) * gi[j]
        else:
            for j in range(n):
                di[j] = (ti[j] * one) * gi[j]


@kernel(error_model="numpy")
def sign_grad(gw, w, k):
    """``gw *= where(w < 0, -1, 1)`` (the gradient through ``|W|``)."""
    B, n = gw.shape
    one, zero = k[ONE], k[ZERO]
    for i in range(B):
        gi, wi = gw[i], w[i]
        for j in range(n):
            gi[j] = gi[j] * (-one if wi[j] < zero else one)
