"""Figures for runs: receptive-field grids, confusion matrices, histograms and curves.

Every function draws on its own :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot,
so no global state, no GUI backend and nothing left open), writes the PNG atomically (temporary
file + rename, so a reader never sees half an image) and returns the path. Inputs may be numpy
arrays, torch tensors or lists.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..io.atomic import atomic_write_bytes

#: Largest side of a figure, in inches; big grids get more dots per inch instead.
MAX_SIDE_IN = 12.0
#: Most points drawn per curve; longer curves are thinned evenly.
MAX_CURVE_POINTS = 2000
#: Most example boundaries drawn as lines in a raster; more are marked as ticks on the top axis.
MAX_BOUNDARY_LINES = 40
#: Approximate width in pixels of a weight grid with few neurons (each weight drawn k x k).
TARGET_GRID_PX = 1000


def _to_numpy(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def _save(fig: Figure, path: str | os.PathLike[str], dpi: float = 100) -> Path:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return atomic_write_bytes(path, buf.getvalue())


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, cols) of a near-square grid for ``n`` tiles: cols = ceil(sqrt(n))."""
    if n < 1:
        raise ValueError(f"need at least one tile, got {n}")
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def weight_mosaic(weights: Any, image_shape: tuple[int, int] = (28, 28), gap: int = 1) -> np.ndarray:
    """One 2-D array holding each neuron's incoming weights (a column of ``weights [n_input, N]``)
    as an ``image_shape`` tile, tiles in a near-square grid (row-major by neuron index) separated
    by ``gap`` pixels of NaN. Unused tiles are NaN too."""
    w = _to_numpy(weights, "weights")
    if w.ndim == 1:
        w = w[:, None]
    if w.ndim != 2:
        raise ValueError(f"weights must be [n_input, n_neurons], got shape {w.shape}")
    h, wd = (int(s) for s in image_shape)
    if h * wd != w.shape[0]:
        raise ValueError(
            f"weights have {w.shape[0]} inputs (rows) but image_shape {tuple(image_shape)} "
            f"has {h * wd} pixels; pass image_shape matching the input layer, or "
            "transpose weights if they are [n_neurons, n_input]"
        )
    n = w.shape[1]
    rows, cols = grid_shape(n)
    # [n_input, N] -> [N, h, w], padded to rows*cols tiles, then laid out with gaps
    tiles = np.full((rows * cols, h + gap, wd + gap), np.nan)
    tiles[:n, :h, :wd] = w.T.reshape(n, h, wd)
    mosaic = tiles.reshape(rows, cols, h + gap, wd + gap).transpose(0, 2, 1, 3)
    mosaic = mosaic.reshape(rows * (h + gap), cols * (wd + gap))
    return mosaic[: rows * (h + gap) - gap, : cols * (wd + gap) - gap]


def plot_weight_grid(
    weights: Any,
    path: str | os.PathLike[str],
    image_shape: tuple[int, int] = (28, 28),
    *,
    title: str | None = None,
    cmap: str = "hot_r",
    vmin: float | None = None,
    vmax: float | None = None,
) -> Path:
    """Each neuron's incoming weights (columns of ``weights [n_input, N]``) as an image tile in a
    near-square grid, drawn as one mosaic image (fast and legible for any N up to thousands).

    Colours share one scale: ``vmin`` defaults to min(0, smallest weight), ``vmax`` to the largest
    weight. Thin grey lines separate the tiles. Every weight is drawn as k x k device pixels with
    an integer k >= 1 (no resampling): small grids are about 1000 pixels wide, and from about 1000
    neurons on each weight is one pixel (6400 neurons: a 2319 x 2319 pixel mosaic).
    """
    import matplotlib
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    w = _to_numpy(weights, "weights")
    if w.ndim == 1:
        w = w[:, None]
    weight_mosaic(w[:, :1], image_shape)  # validates shapes with a clear message
    h, wd = (int(v) for v in image_shape)
    n = w.shape[1]
    finite = w[np.isfinite(w)]
    if finite.size == 0:
        raise ValueError("weights contain no finite value to plot")
    lo = min(0.0, float(finite.min())) if vmin is None else float(vmin)
    hi = float(finite.max()) if vmax is None else float(vmax)
    if hi <= lo:
        hi = lo + 1.0
    norm = Normalize(vmin=lo, vmax=hi, clip=True)
    cm = matplotlib.colormaps[cmap]

    rows, cols = grid_shape(n)
    k = max(1, round(TARGET_GRID_PX / (max(rows * h, cols * wd))))
    gap = 1 if k < 4 else 2
    th, tw = h * k, wd * k
    rgba = cm(norm(w.T.reshape(n, h, wd)), bytes=True)  # [n, h, w, 4] uint8
    if k > 1:
        rgba = rgba.repeat(k, axis=1).repeat(k, axis=2)
    canvas = np.empty((rows * (th + gap) - gap, cols * (tw + gap) - gap, 4), dtype=np.uint8)
    canvas[...] = (154, 154, 154, 255)  # grid lines
    for slot in range(rows * cols):
        r, c = divmod(slot, cols)
        y0, x0 = r * (th + gap), c * (tw + gap)
        canvas[y0 : y0 + th, x0 : x0 + tw] = rgba[slot] if slot < n else 255  # unused slots: white

    ax_h, ax_w = canvas.shape[:2]
    left, right, bottom, top = 16, 120, 16, 44
    fig_w, fig_h = left + ax_w + right, bottom + ax_h + top
    dpi = 100
    fig = Figure(figsize=(fig_w / dpi, fig_h / dpi))
    ax = fig.add_axes((left / fig_w, bottom / fig_h, ax_w / fig_w, ax_h / fig_h))
    ax.imshow(canvas, interpolation="nearest", aspect="equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():  # a frame in the grid-line colour
        spine.set_color("#9a9a9a")
    ax.set_title(title or f"incoming weights of {n} neuron{'s' if n != 1 else ''} ({h}x{wd} each)", fontsize=11)
    bar_h = min(ax_h, 500)
    cax = fig.add_axes(((left + ax_w + 18) / fig_w, (bottom + (ax_h - bar_h) / 2) / fig_h, 18 / fig_w, bar_h / fig_h))
    fig.colorbar(ScalarMappable(norm=norm, cmap=cm), cax=cax, label="weight")
    return _save(fig, path, dpi=dpi)


def plot_confusion(
    cm: Any, path: str | os.PathLike[str], *, class_names: Sequence[str] | None = None, title: str | None = None
) -> Path:
    """A confusion matrix ``cm[true, predicted]`` with counts written in the cells (up to 20
    classes); the title gives the accuracy (trace / total) unless ``title`` is given."""
    m = _to_numpy(cm, "cm")
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"cm must be a square [n_classes, n_classes] array, got shape {m.shape}")
    k = m.shape[0]
    names = [str(c) for c in (class_names if class_names is not None else range(k))]
    if len(names) != k:
        raise ValueError(f"class_names has {len(names)} names for {k} classes")
    total = m.sum()
    if title is None:
        title = (
            f"confusion matrix: accuracy {100 * np.trace(m) / total:.2f}% of {int(total)}"
            if total > 0
            else "confusion matrix (no examples)"
        )
    side = float(np.clip(0.5 * k + 2.5, 4.0, MAX_SIDE_IN))
    fig = Figure(figsize=(side + 1.0, side))
    ax = fig.add_subplot(1, 1, 1)
    row_sums = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, row_sums, out=np.zeros_like(m), where=row_sums > 0)
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(im, ax=ax, label="fraction of the true class", fraction=0.046, pad=0.04)
    if k <= 20:
        for (i, j), v in np.ndenumerate(m):
            if v:
                ax.text(
                    j,
                    i,
                    f"{v:g}",
                    ha="center",
                    va="center",
                    fontsize=8 if k > 12 else 9,
                    color="white" if frac[i, j] > 0.5 else "black",
                )
    ax.set_xticks(range(k), names if k <= 30 else None)
    ax.set_yticks(range(k), names if k <= 30 else None)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def plot_histogram(
    values: Any, path: str | os.PathLike[str], xlabel: str, title: str, *, bins: int = 50, ylabel: str = "count"
) -> Path:
    """A histogram of ``values`` (e.g. the adaptive thresholds theta) with n, mean and range in a
    corner note. NaNs are left out and counted in the note."""
    v = _to_numpy(values, "values").ravel()
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        raise ValueError(f"no finite values to plot in the histogram '{title}'")
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    ax.hist(finite, bins=bins, color="#3b75af", edgecolor="white", linewidth=0.5)
    ax.axvline(finite.mean(), color="#c0392b", linewidth=1.2)
    note = (
        f"n = {finite.size}\nmean = {finite.mean():.4g} (red line)\nmin = {finite.min():.4g}\nmax = {finite.max():.4g}"
    )
    if finite.size < v.size:
        note += f"\n{v.size - finite.size} non-finite left out"
    ax.text(
        0.98,
        0.97,
        note,
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize=9,
        bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8, "edgecolor": "#cccccc"},
    )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def plot_curves(
    curves: Mapping[str, Sequence[float]],
    path: str | os.PathLike[str],
    xlabel: str,
    ylabel: str,
    *,
    title: str | None = None,
    x: Sequence[float] | Mapping[str, Sequence[float]] | None = None,
    logy: bool = False,
) -> Path:
    """Line plot of named series (``{"train accuracy": [...], ...}``), readable at any length.

    ``x`` gives the horizontal positions, shared (one sequence) or per curve (a mapping); by default
    a curve's points are at 1, 2, 3, ... Points are marked when a curve has 30 points or fewer (so
    one point is a visible marker, not an invisible line); a curve of more than
    :data:`MAX_CURVE_POINTS` points is thinned to that many, evenly, keeping the first and the last.
    ``logy`` draws the vertical axis on a log scale (when every value is positive).
    """
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError("curves must be a non-empty dict of name -> list of values")
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    all_whole, x_range = True, []
    for name, ys in curves.items():
        y = _to_numpy(ys, f"curve '{name}'").ravel()
        if isinstance(x, Mapping):
            xs = x.get(name)
        else:
            xs = x
        xs = np.arange(1, y.size + 1) if xs is None else _to_numpy(xs, f"x of '{name}'").ravel()
        if xs.size != y.size:
            raise ValueError(f"curve '{name}' has {y.size} values but {xs.size} x positions")
        all_whole = all_whole and bool(np.all(xs == np.round(xs)))
        x_range += [float(xs.min()), float(xs.max())] if xs.size else []
        if y.size > MAX_CURVE_POINTS:
            keep = np.unique(np.linspace(0, y.size - 1, MAX_CURVE_POINTS).round().astype(int))
            xs, y = xs[keep], y[keep]
        ax.plot(xs, y, label=str(name), marker="o" if y.size <= 30 else None, markersize=3.5, linewidth=1.4)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if all_whole:  # epochs, iterations: whole-number ticks (no 0.96, 0.98, ... around one point)
        from matplotlib.ticker import MaxNLocator

        lo, hi = min(x_range), max(x_range)
        if hi - lo < 2:
            ax.set_xlim(lo - 1, hi + 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if logy and all(np.all(_to_numpy(v, "curve") > 0) for v in curves.values()):
        ax.set_yscale("log")
    if title:
        ax.set_title(title, fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_training_log(log: Mapping[str, Any], path: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """Four panels over training examples from a run's log (``examples`` plus any of
    ``running_acc``, ``spikes_per_presentation``, ``mean_theta_mv`` / ``max_theta_mv`` and
    ``ex_per_s``): the quantities that show a run going wrong (a numerical lock shows as spikes
    per presentation and theta leaving their range, and examples per second collapsing)."""
    if "examples" not in log or len(log["examples"]) == 0:
        raise ValueError("the training log has no data lines (no 'examples' values) to plot")
    x = _to_numpy(log["examples"], "examples").ravel()
    panels = (
        ("running accuracy", ("running_acc",)),
        ("spikes per presentation", ("spikes_per_presentation",)),
        ("theta (mV)", ("mean_theta_mv", "max_theta_mv")),
        ("examples per second", ("ex_per_s",)),
    )
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    thousands = x.size > 0 and float(np.nanmax(x)) >= 10_000
    fig = Figure(figsize=(9.0, 6.0))
    for i, (label, keys) in enumerate(panels):
        ax = fig.add_subplot(2, 2, i + 1)
        ax.xaxis.set_major_locator(MaxNLocator(6))
        if thousands:  # 175000 -> 175k: long runs' tick labels stay apart
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v / 1000:g}k"))
        for key in keys:
            if key in log:
                y = _to_numpy(log[key], key).ravel()
                ax.plot(x, y, label=key.replace("_mv", "").replace("_", " "), linewidth=1.2)
        ax.set_xlabel("training examples")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if len(keys) > 1:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def plot_raster(
    steps: Any,
    neurons: Any,
    path: str | os.PathLike[str],
    *,
    dt_ms: float = 1.0,
    n_neurons: int | None = None,
    title: str = "spike raster",
    boundaries_ms: Sequence[float] = (),
) -> Path:
    """A spike raster: one dot per spike at (time, neuron), dots smaller as spikes get many;
    optional example boundaries: lines for up to :data:`MAX_BOUNDARY_LINES` of them, else short
    ticks on the top axis, so that the spikes stay visible."""
    t = _to_numpy(steps, "steps").ravel() * dt_ms
    j = _to_numpy(neurons, "neurons").ravel()
    if t.shape != j.shape:
        raise ValueError(f"steps and neurons differ in length ({t.size} vs {j.size})")
    fig = Figure(figsize=(8.0, 4.0))
    ax = fig.add_subplot(1, 1, 1)
    size = float(np.clip(4.0 * np.sqrt(2000.0 / max(t.size, 1)), 0.2, 4.0))
    ax.scatter(t, j, s=size, color="#222222", linewidths=0)
    bounds = list(boundaries_ms)
    if len(bounds) <= MAX_BOUNDARY_LINES:
        for b in bounds:
            ax.axvline(b, color="#c0392b", linewidth=0.6, alpha=0.6)
    else:
        ax.plot(bounds, np.ones(len(bounds)), "|", color="#c0392b", ms=4, transform=ax.get_xaxis_transform())
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("neuron")
    if n_neurons:
        ax.set_ylim(-0.5, n_neurons - 0.5)
    ax.set_title(f"{title} ({t.size} spikes)", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)
