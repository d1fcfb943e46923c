"""Figures (matplotlib, Agg canvas, PNGs written atomically)."""

from .figures import (
    grid_shape,
    plot_confusion,
    plot_curves,
    plot_histogram,
    plot_weight_grid,
    weight_mosaic,
)

__all__ = ["grid_shape", "plot_confusion", "plot_curves", "plot_histogram", "plot_weight_grid", "weight_mosaic"]
