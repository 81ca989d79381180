"""Annotated score heatmap (e.g. configs x categories image AUROC) of a benchmark.

Same conventions as :mod:`adtool.visualization.plots`: matplotlib's object API on an Agg
canvas (no ``pyplot``) and an atomic write of the PNG.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.patches import Rectangle

from adtool.visualization.canvas import new_figure, save_figure


def plot_score_heatmap(
    values: Sequence[Sequence[float | None]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    path: str | os.PathLike,
    title: str = "Image AUROC",
    notes: Sequence[Sequence[str]] | None = None,
    best: Sequence[Sequence[bool]] | None = None,
    vmin: float | None = None,
    vmax: float = 1.0,
) -> Path:
    """A rows x columns heatmap with every value written in its cell.

    Args:
        values: (rows, cols) scores; None or NaN cells are grey and show their note.
        row_labels: one label per row (e.g. config stems).
        col_labels: one label per column (e.g. categories, then ``'mean'``).
        path: output PNG.
        title: figure title. Defaults to ``'Image AUROC'``.
        notes: (rows, cols) text for cells without a value (``'failed'``, ``'pending'``).
            Defaults to None (an en dash).
        best: (rows, cols) flags; flagged cells get a bold value and a red outline.
            Defaults to None.
        vmin: lower end of the colour scale. Defaults to None: 0.5 (chance for AUROC) or
            the lowest value if below that.
        vmax: upper end of the colour scale. Defaults to 1.0.

    Returns:
        The written path.
    """
    grid = np.array(
        [[math.nan if v is None else float(v) for v in row] for row in values], dtype=np.float64
    ).reshape(len(row_labels), len(col_labels))
    finite = grid[np.isfinite(grid)]
    if vmin is None:
        vmin = min(0.5, float(finite.min())) if finite.size else 0.5
    if vmax <= vmin:
        vmax = vmin + 1.0
    n_rows, n_cols = grid.shape
    longest = max((len(str(label)) for label in row_labels), default=4)
    fig = new_figure(2.0 + 0.075 * longest + 0.95 * n_cols, 1.4 + 0.45 * n_rows)
    ax = fig.add_subplot()
    masked = np.ma.masked_invalid(grid)
    cmap = _colormap()
    image = ax.imshow(masked, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    for r in range(n_rows):
        for c in range(n_cols):
            value = grid[r, c]
            flagged = bool(best is not None and best[r][c])
            if math.isfinite(value):
                shade = (value - vmin) / (vmax - vmin)
                colour = "black" if shade > 0.55 else "white"
                text = f"{value:.3f}"
            else:
                colour = "black"
                text = (notes[r][c] if notes is not None else "") or "\u2013"
            ax.text(
                c,
                r,
                text,
                ha="center",
                va="center",
                color=colour,
                fontsize="small",
                fontweight="bold" if flagged else "normal",
            )
            if flagged:
                ax.add_patch(
                    Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="tab:red", lw=2.5)
                )
    ax.set_xticks(range(n_cols), [str(label) for label in col_labels], rotation=30, ha="right")
    ax.set_yticks(range(n_rows), [str(label) for label in row_labels])
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)


def _colormap():
    from matplotlib import colormaps

    return colormaps["viridis"].with_extremes(bad="lightgray")
