"""Figures of a sweep (``spikeforge sweep report``): the metric against each swept parameter,
the optimisation history, and parameter importances."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from .figures import _save


def _finish(fig: Figure, ax, title: str, path: Path) -> Path:
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path, dpi=120)


def plot_metric_vs_param(rows: Sequence[Mapping[str, Any]], key: str, metric: str, title: str, path: Path) -> Path:
    """One point per configuration (mean ± std over seeds), each seed in grey; categorical values
    get one tick each, numeric ones a linear or (over a wide range) log axis."""
    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    xs = [r["params"].get(key) for r in rows]
    numeric = all(isinstance(x, int | float) and not isinstance(x, bool) for x in xs)
    cats = None if numeric else sorted({str(x) for x in xs})
    for r, x in zip(rows, xs):
        xpos = cats.index(str(x)) if cats else x
        seeds = list(r["values"].values())
        ax.scatter([xpos] * len(seeds), seeds, s=12, color="0.6", zorder=2)
        ax.errorbar([xpos], [r["mean"]], yerr=[r["std"] or 0.0], fmt="o", color="C0", capsize=3, zorder=3)
    if cats:
        ax.set_xticks(range(len(cats)), cats, rotation=30 if len(cats) > 4 else 0)
    elif xs and min(xs) > 0 and max(xs) / min(xs) > 50:
        ax.set_xscale("log")
    ax.set_xlabel(key)
    ax.set_ylabel(metric)
    return _finish(fig, ax, title, path)


def plot_history(
    numbers: Sequence[int], values: Sequence[float], maximize: bool, metric: str, title: str, path: Path
) -> Path:
    fig = Figure(figsize=(5, 3.5))
    ax = fig.subplots()
    best: list[float] = []
    for v in values:
        best.append(v if not best else (max(best[-1], v) if maximize else min(best[-1], v)))
    ax.plot(numbers, values, "o", ms=4, label="trial")
    ax.step(numbers, best, where="post", color="C1", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.legend(fontsize=8)
    return _finish(fig, ax, title, path)


def plot_importances(importances: Mapping[str, float], title: str, path: Path) -> Path:
    fig = Figure(figsize=(5, 0.5 + 0.4 * len(importances)))
    ax = fig.subplots()
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names])
    ax.set_xlabel("importance (fANOVA, normalised)")
    return _finish(fig, ax, title, path)
