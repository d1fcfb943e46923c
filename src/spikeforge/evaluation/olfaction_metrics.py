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
density overtakes the lower one's).
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


def infer_threshold(w: np.ndarray, iters: int = 200, seed: int = 0) -> float | None:
    """Threshold between the two modes of a 2-component Gaussian mixture on ``log(w)`` (w > 0).
    Returns None when the weights are not bimodal enough to define one."""
    x = np.log(np.asarray(w, dtype=np.float64).ravel())
    x = x[np.isfinite(x)]
    if x.size < 10 or x.std() == 0:
        return None
    mu = np.quantile(x, [0.25, 0.9])
    sd = np.full(2, x.std())
    pi = np.array([0.5, 0.5])
    for _ in range(iters):
        dens = pi / (sd * np.sqrt(2 * np.pi)) * np.exp(-0.5 * ((x[:, None] - mu) / sd) ** 2)
        resp = dens / np.maximum(dens.sum(1, keepdims=True), 1e-300)
        nk = resp.sum(0) + 1e-12
        pi = nk / x.size
        mu = (resp * x[:, None]).sum(0) / nk
        sd = np.sqrt((resp * (x[:, None] - mu) ** 2).sum(0) / nk) + 1e-6
    lo, hi = np.argsort(mu)
    grid = np.linspace(mu[lo], mu[hi], 2001)
    d_lo = pi[lo] / sd[lo] * np.exp(-0.5 * ((grid - mu[lo]) / sd[lo]) ** 2)
    d_hi = pi[hi] / sd[hi] * np.exp(-0.5 * ((grid - mu[hi]) / sd[hi]) ** 2)
    above = np.nonzero(d_hi > d_lo)[0]
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
    thr = infer_threshold(w[w > 0])
    out["K_inferred_threshold"] = thr
    out["K_inferred"] = kc_input_degree(w, thr)[0] if thr is not None else None
    return out
