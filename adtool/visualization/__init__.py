"""Plots of image-level results and anomaly-map overlays (matplotlib, Agg canvas)."""

from adtool.visualization.overlays import save_overlays
from adtool.visualization.plots import (
    new_figure,
    plot_histogram,
    plot_pr,
    plot_roc,
    save_figure,
)

__all__ = ["new_figure", "plot_histogram", "plot_pr", "plot_roc", "save_figure", "save_overlays"]
