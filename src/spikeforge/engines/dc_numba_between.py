"""Between presentations, in the compiled engine: the weight normalisation with kept column sums and
the rebuild of the conductances still in flight after the weights were rescaled."""

from __future__ import annotations

from ..jit import kernel


@kernel
def normalize_cached(W, total, sums, dirty, scratch, fac):
    """``synapses.projections.normalize_columns_c`` bit for bit, with the column sums of the last
    call kept: the scaling pass also sums the new columns (in the same row order as the summing pass
    would), so the next call re-sums only the columns marked in ``dirty`` (changed by STDP since: the
    loop marks every column it updates), in one row-order pass over those columns. That saves one
    of the two passes over ``W`` (784 x N float64, 40 MB at N = 6400) per presentation.
    ``scratch``: int64 [N], ``fac``: float64 [N] (buffers)."""
    n_in, n = W.shape
    m = 0
    for j in range(n):
        if dirty[j]:
            scratch[m] = j
            sums[j] = 0.0
            m += 1
    for i in range(n_in):
        for q in range(m):
            j = scratch[q]
            sums[j] += W[i, j]
    for j in range(n):
        fac[j] = total / sums[j] if sums[j] > 0.0 else 1.0
        sums[j] = 0.0
    for i in range(n_in):
        for j in range(n):
            w = W[i, j] * fac[j]
            W[i, j] = w
            sums[j] += w
    dirty[:] = False


@kernel
def rebuild_in_flight(W, D, hist_idx, hist_n, ring_ge, ring_live, t_next):
    """Recompute the conductance of spikes still in flight from the current weights (after the
    weights were rescaled between presentations, Brian delivers the rescaled weights). With none in
    flight (after a rest longer than the longest delay) the ring is all zeros already: nothing to do.
    ``ring_live``: the ring's row flags (``Delivery.ring_live``), all set after a rebuild."""
    hist_len = hist_n.shape[0]
    in_flight = 0
    for d in range(1, min(hist_len, t_next + 1)):
        in_flight += hist_n[(t_next - d) % hist_len]
    if in_flight == 0:
        return
    ring_ge[:, :] = 0.0
    ring_live[:] = True
    for d in range(1, min(hist_len, t_next + 1)):
        te = t_next - d
        sl = te % hist_len
        for qi in range(hist_n[sl]):
            i = hist_idx[sl, qi]
            for j in range(W.shape[1]):
                if D[i, j] >= d:
                    ring_ge[(te + D[i, j]) % hist_len, j] += W[i, j]
