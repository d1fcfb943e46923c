"""Figure of original images beside their reconstructions (one column per image)."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..io.atomic import atomic_write_bytes


def plot_reconstructions(
    originals: Any, rows: Sequence[tuple[str, Any]], path: str | os.PathLike[str], *, title: str | None = None
) -> Path:
    """Draw ``originals`` ``[n, H, W]`` in the first row and each ``(label, images [n, H, W])`` of
    ``rows`` below it, all on the same grey scale (0 to the originals' maximum). Written atomically
    as a PNG."""
    orig = np.asarray(originals.detach().cpu() if hasattr(originals, "detach") else originals, dtype=np.float64)
    if orig.ndim != 3:
        raise ValueError(f"originals must be [n, H, W], got shape {orig.shape}")
    all_rows = [("original", orig)]
    for label, imgs in rows:
        arr = np.asarray(imgs.detach().cpu() if hasattr(imgs, "detach") else imgs, dtype=np.float64)
        if arr.shape != orig.shape:
            raise ValueError(f"row '{label}' has shape {arr.shape}, originals {orig.shape}")
        all_rows.append((label, arr))
    n = orig.shape[0]
    vmax = float(orig.max()) if orig.size and orig.max() > 0 else 1.0
    fig = Figure(figsize=(1.1 * n + 1.2, 1.15 * len(all_rows) + (0.4 if title else 0.0)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(all_rows), n, squeeze=False)
    for r, (label, arr) in enumerate(all_rows):
        for c in range(n):
            ax = axes[r][c]
            ax.imshow(arr[c], cmap="gray", vmin=0.0, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return atomic_write_bytes(path, buf.getvalue())
