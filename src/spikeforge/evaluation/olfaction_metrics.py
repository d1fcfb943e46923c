"""Connectivity metrics of the olfaction networks: GloScore and the KC input degree K.

**GloScore** (Wang et al. 2021, ``gyyang/olfaction_evolution:tools.py compute_glo_score``): given a
weight matrix ``w`` [n_in, n_pn] onto the PNs and a receptor *type* for each input, average each
PN's weights over the inputs of each type, take the two largest averages ``w1 >= w2`` and score
``(w1 - w2) / (w1 + w2)``; the network's GloScore is the mean over PNs (0 when ``w1 + w2 = 0``).
Two definitions (reference §1.10 and §2.5):

- :func:`glo_score_orn` (vgp23 §1.10, Wang's ``mode='matrix'``): inputs are the ORNs, ``w`` the
  ORN->PN matrix, the type of an ORN the argmax of its OR->ORN weights.
- :func:`glo_score_effective` (Wang's logging with a receptor layer, §2.5): ``w`` the effective
  OR->PN matrix ``W_or->orn @ W_orn->pn`` (with ``[n_out, n_in]`` layouts: ``(W_pn W_orn)^T``),
  each OR its own type.

Wang's training log with a receptor layer records the first as ``glo_score`` and the second as
``combined_glo_score``; :func:`orn_score` (his ``or_glo_score``) scores the OR->ORN matrix itself.

**K** (§2.5, §1.10): the number of PN->KC weights above a threshold per KC, averaged over the KCs
with at least one (the fraction with none is reported as ``bad_kc``). Thresholds: ``1/N_KC``
(vgp23), ``0.02 = 1/N_PN`` (Wang's prune threshold) and one inferred from a 2-component Gaussian
mixture fitted to the log weights (Wang's ``infer_threshold``: where the upper mode's weighted
density overtakes the lower one's). With pruning, the pruned zeros form the lower mode, so the
inferred K equals the count of unpruned weights, as in Wang's logs.
"""

from __future__ import annotations

import numpy as np


def glo_score(w: np.ndarray, types: np.ndarray, n_types: int | None = None) -> float:
    """GloScore of ``w`` [n_in, n_pn] with ``types`` [n_in] (ints): mean over PNs of
    ``(w1 - w2)/(w1 + w2)`` over the per-type mean weights."""
    w = np.abs(np.asarray(w, dtype=np.float64))
    types = np.asarray(types)
    n_types = int(types.max()) + 1 if n_types is None else n_types
    if n_types < 2:
        raise ValueError(f"GloScore needs at least 2 receptor types, got {n_types}")
    means = np.zeros((n_types, w.shape[1]))
    for k in range(n_types):
        sel = types == k
        if sel.any():
            means[k] = w[sel].mean(0)
    top = -np.sort(-means, axis=0)[:2]
    denom = top[0] + top[1]
    score = np.where(denom > 0, (top[0] - top[1]) / np.where(denom > 0, denom, 1.0), 0.0)
    return float(score.mean())


def glo_score_orn(w_or2orn: np.ndarray, w_orn2pn: np.ndarray) -> float:
    """vgp23 / Wang 'matrix' mode. Weights in ``[n_out, n_in]`` layout: ``w_or2orn`` [n_orn, n_or],
    ``w_orn2pn`` [n_pn, n_orn]."""
    w_or2orn = np.abs(np.asarray(w_or2orn))
    types = w_or2orn.argmax(1)
    return glo_score(np.asarray(w_orn2pn).T, types, w_or2orn.shape[1])


def glo_score_effective(w_or2orn: np.ndarray, w_orn2pn: np.ndarray) -> float:
    """Wang's receptor-layer logging: the effective OR->PN matrix, one type per OR."""
    eff = np.abs(np.asarray(w_orn2pn)) @ np.abs(np.asarray(w_or2orn))  # [n_pn, n_or]
    return glo_score(eff.T, np.arange(eff.shape[1]))


def orn_score(w_or2orn: np.ndarray) -> float:
    """Wang's "ORN score" (``compute_glo_score`` on ``w_or``, reference §2.5): how close each ORN is to
    expressing a single receptor. ``w_or2orn`` [n_orn, n_or]; each OR its own type, scored per ORN."""
    w = np.asarray(w_or2orn)
    return glo_score(w.T, np.arange(w.shape[1]))


def kc_input_degree(w_pn2kc: np.ndarray, threshold: float) -> tuple[float, float]:
    """``(K, bad_kc)``: mean count of weights > threshold per KC over KCs with a count > 0, and the
    fraction of KCs with none. ``w_pn2kc`` is [n_kc, n_pn]."""
    counts = (np.asarray(w_pn2kc) > threshold).sum(1)
    good = counts > 0
    k = float(counts[good].mean()) if good.any() else 0.0
    return k, float(1.0 - good.mean())


def infer_threshold(w: np.ndarray, iters: int = 200, seed: int = 0, max_samples: int = 100_000) -> float | None:
    """Wang's ``analysis_weight.infer_threshold`` on the PN->KC weights ``w`` [n_kc, n_pn]: keep the
    KCs whose strongest input is over 15x their median one (all KCs if none is), take
    ``log(w + 1e-10)`` of their weights (pruned zeros included; at most ``max_samples`` of them,
    drawn with ``seed``), fit a 2-component Gaussian mixture (EM from means -5 and 0) and return the
    first point of a 1,000-point grid over the data's range where the upper mode's weighted density
    exceeds the lower one's. None where there is no such point (Wang falls back to 0.1 there)."""
    w = np.abs(np.asarray(w, dtype=np.float64))
    if w.ndim == 2:
        with np.errstate(divide="ignore", invalid="ignore"):
            selected = w.max(1) / np.median(w, axis=1) > 15  # 0/0 (a silent KC) is not selected
        if selected.any():
            w = w[selected]
    x = np.log(w.ravel() + 1e-10)
    if x.size > max_samples:
        x = np.random.default_rng(seed).choice(x, size=max_samples)
    if x.size < 10 or x.std() == 0:
        return None
    mu, var, pi = np.array([-5.0, 0.0]), np.full(2, x.var()), np.array([0.5, 0.5])

    def weighted_pdf(t: np.ndarray) -> np.ndarray:
        return pi / np.sqrt(2 * np.pi * var) * np.exp(-0.5 * (t[:, None] - mu) ** 2 / var)

    for _ in range(iters):
        dens = weighted_pdf(x)
        resp = dens / np.maximum(dens.sum(1, keepdims=True), 1e-300)
        nk = resp.sum(0) + 1e-12
        pi, mu = nk / x.size, (resp * x[:, None]).sum(0) / nk
        var = (resp * (x[:, None] - mu) ** 2).sum(0) / nk + 1e-6  # sklearn's reg_covar
    lo, hi = np.argsort(mu)
    grid = np.linspace(x.min(), x.max(), 1000)
    d = weighted_pdf(grid)
    above = np.nonzero(d[:, hi] > d[:, lo])[0]
    if above.size == 0 or mu[hi] - mu[lo] < 1e-3:
        return None
    return float(np.exp(grid[above[0]]))


def k_all(w_pn2kc: np.ndarray) -> dict[str, float | None]:
    """K at the three thresholds: ``1/N_KC``, ``0.02`` (= Wang's 1/N_PN at 50 PNs) and inferred."""
    w = np.abs(np.asarray(w_pn2kc))
    n_kc = w.shape[0]
    out: dict[str, float | None] = {}
    out["K_1_over_nkc"], out["bad_kc_1_over_nkc"] = kc_input_degree(w, 1.0 / n_kc)
    out["K_0.02"], out["bad_kc_0.02"] = kc_input_degree(w, 0.02)
    thr = infer_threshold(w)
    out["K_inferred_threshold"] = thr
    out["K_inferred"] = kc_input_degree(w, thr)[0] if thr is not None else None
    return out
