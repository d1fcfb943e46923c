"""Figures of the olfaction experiment: glomeruli matrix, PN->KC histogram, raster, rate curve, bars."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    from ..io.atomic import atomic_writer

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=100)
    return path


def plot_glomeruli(w_or2orn: np.ndarray, w_orn2pn: np.ndarray, path, title: str = "ORN -> PN") -> Path:
    """Wang's glomeruli figure: the ORN->PN matrix with ORNs sorted by receptor type (argmax of their
    OR->ORN weights) and PNs sorted by their preferred type."""
    w1, w2 = np.abs(w_or2orn), np.abs(w_orn2pn)  # [n_orn, n_or], [n_pn, n_orn]
    types = w1.argmax(1)
    orn_order = np.argsort(types, kind="stable")
    m = w2[:, orn_order]
    pn_pref = np.array([types[orn_order][row.argmax()] for row in m])
    m = m[np.argsort(pn_pref, kind="stable")]
    fig = Figure(figsize=(7.0, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(m, aspect="auto", cmap="viridis", interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.04)
    ax.set_xlabel("ORN (sorted by receptor type)")
    ax.set_ylabel("PN (sorted)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_kc_histogram(w_pn2kc: np.ndarray, thresholds: Mapping[str, float | None], path, title: str) -> Path:
    w = np.abs(np.asarray(w_pn2kc)).ravel()
    w = w[w > 0]
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    if w.size:
        bins = np.logspace(np.log10(max(w.min(), 1e-8)), np.log10(w.max() + 1e-12), 60)
        ax.hist(w, bins=bins.tolist(), color="#3b75af")
        ax.set_xscale("log")
    for (name, thr), col in zip(thresholds.items(), ("#c0392b", "#27ae60", "#8e44ad")):
        if thr:
            ax.axvline(thr, color=col, linewidth=1.2, label=f"{name} = {thr:.3g}")
    ax.set_xlabel("|PN -> KC weight| (log)")
    ax.set_ylabel("count")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_layer_raster(record: Sequence[Sequence[np.ndarray]], names: Sequence[str], path, burn_in: int) -> Path:
    """Spike raster of one sample, one panel per layer (at most 200 neurons shown per layer)."""
    n_layers = len(names)
    fig = Figure(figsize=(8.0, 1.6 * n_layers + 0.6))
    for layer in range(n_layers):
        ax = fig.add_subplot(n_layers, 1, layer + 1)
        s = np.array([np.asarray(step[layer])[:200] for step in record])  # [T, n]
        t, j = np.nonzero(s)
        ax.scatter(t, j, s=1.5, color="#222222", linewidths=0)
        ax.axvline(burn_in, color="#c0392b", linewidth=0.8)
        ax.set_ylabel(names[layer], fontsize=8)
        ax.set_xlim(0, len(record))
        if layer < n_layers - 1:
            ax.set_xticklabels([])
    fig.axes[-1].set_xlabel("time step (red: end of burn-in)")
    fig.tight_layout()
    return _save(fig, path)


def plot_rate_curves(a: np.ndarray, curves: Mapping[str, np.ndarray], path, title: str) -> Path:
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    for name, r in curves.items():
        ax.plot(a, r, label=name, linewidth=1.4)
    ax.set_xlabel("odor activation a")
    ax.set_ylabel("input spikes per step")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_bars(
    groups: Sequence[str], series: Mapping[str, Sequence[float | None]], path, ylabel: str, title: str
) -> Path:
    fig = Figure(figsize=(7.0, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for k, (name, vals) in enumerate(series.items()):
        v = np.array([np.nan if val is None else val for val in vals], dtype=float)
        ax.bar(x + (k - (len(series) - 1) / 2) * width, v, width, label=name)
    ax.set_xticks(x, groups)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)
