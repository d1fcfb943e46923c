"""Membrane traces against a target, as a PNG and as a GIF animation over training (Agg canvas,
no pyplot; files written atomically)."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..io.atomic import atomic_write_bytes


def draw_membrane_trace(ax, mem, target, spikes, theta: float, title: str) -> None:
    """Target (dashed), membrane, threshold (dotted) and output spikes (triangles) on ``ax``."""
    t = np.arange(len(mem))
    ax.plot(t, target, "k--", lw=1, label="target")
    ax.plot(t, mem, color="C0", label="output membrane")
    ax.axhline(theta, color="C3", lw=0.8, ls=":", label=f"threshold {theta:.3g}")
    st = np.nonzero(spikes)[0]
    if len(st):
        ax.plot(st, np.full(len(st), theta), "v", color="C3", ms=6, label="output spikes")
    ax.set_xlabel("time step")
    ax.set_ylabel("membrane")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left")


def plot_membrane_trace(
    path: str | os.PathLike[str], mem: np.ndarray, target: np.ndarray, spikes: np.ndarray, theta: float, title: str
) -> Path:
    """One membrane trace as a PNG; returns the path."""
    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    draw_membrane_trace(fig.add_subplot(1, 1, 1), mem, target, spikes, theta, title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return atomic_write_bytes(path, buf.getvalue())


def animate_membrane(path: str | os.PathLike[str], frames: Sequence, target: np.ndarray, name: str) -> Path:
    """A GIF of ``frames`` = ``[(iteration, membrane, threshold, spikes), ...]`` on fixed axes."""
    from PIL import Image

    lo = min(float(target.min()), min(float(f[1].min()) for f in frames))
    hi = max(float(target.max()), max(float(f[1].max()) for f in frames), max(f[2] for f in frames))
    pad = 0.05 * (hi - lo + 1e-9)
    images = []
    fig = Figure(figsize=(5, 3.4), dpi=80)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for it, mem, theta, spikes in frames:
        ax.clear()
        draw_membrane_trace(ax, mem, target, spikes, theta, f"{name}: iteration {it}")
        ax.set_ylim(lo - pad, hi + pad)
        fig.tight_layout()
        canvas.draw()
        rgb = np.asarray(canvas.buffer_rgba())[..., :3]
        images.append(Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=64))
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=80, loop=0)
    return atomic_write_bytes(path, buf.getvalue())
