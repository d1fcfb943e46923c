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
    get one tick each, numeric ones a linear or (over a wide range) log axis. Configurations that
    differ in the other swept keys get their own colour (and, on categorical axes, a small offset)."""
    fig = Figure(figsize=(5.5, 3.8))
    ax = fig.subplots()
    xs = [r["params"].get(key) for r in rows]
    numeric = all(isinstance(x, int | float) and not isinstance(x, bool) for x in xs)
    cats = None if numeric else sorted({str(x) for x in xs})

    def others(r: Mapping[str, Any]) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(r["params"].items()) if k != key)

    groups = sorted({others(r) for r in rows})
    width = 0.5 / max(1, len(groups))
    for gi, group in enumerate(groups):
        members = [(r, x) for r, x in zip(rows, xs) if others(r) == group]
        pos = []
        for r, x in members:
            xpos = cats.index(str(x)) + (gi - (len(groups) - 1) / 2) * width if cats else x
            pos.append(xpos)
            seeds = list(r["values"].values())
            ax.scatter([xpos] * len(seeds), seeds, s=10, color="0.65", zorder=2)
        means = [r["mean"] for r, _ in members]
        stds = [r["std"] or 0.0 for r, _ in members]
        ax.errorbar(pos, means, yerr=stds, fmt="o", color=f"C{gi % 10}", capsize=3, zorder=3, label=group or None)
    if cats:
        ax.set_xticks(range(len(cats)), cats, rotation=30 if len(cats) > 4 else 0)
    elif xs and min(xs) > 0 and max(xs) / min(xs) > 50:
        ax.set_xscale("log")
    if len(groups) > 1:
        ax.legend(fontsize=7, loc="best")
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
    fig = Figure(figsize=(5, max(2.2, 0.8 + 0.4 * len(importances))))
    ax = fig.subplots()
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names])
    ax.set_xlabel("importance (fANOVA, normalised)")
    return _finish(fig, ax, title, path)
