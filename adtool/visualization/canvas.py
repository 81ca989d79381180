"""Figures on matplotlib's Agg canvas (never ``pyplot``), written atomically.

A leaf module: the evaluation report writers and the plot modules both import it, so it
imports nothing else of adtool's but :mod:`adtool.fileio`.
"""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from adtool.fileio import atomic_path


def new_figure(width: float = 6.4, height: float = 4.8, dpi: int = 100) -> Figure:
    """A matplotlib figure attached to an Agg canvas."""
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically (temp file + ``os.replace``)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
