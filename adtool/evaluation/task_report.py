"""Writers shared by the HuggingFace task metrics: results.txt blocks, tables and plots.

Every file goes through :mod:`adtool.fileio` (atomic) and figures use matplotlib's Agg
canvas (:func:`adtool.visualization.plots.new_figure`), never ``pyplot``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from adtool.fileio import atomic_write_bytes, atomic_write_text
from adtool.visualization.canvas import new_figure, save_figure


def fmt(value, digits: int = 4) -> str:
    """A number for a person: ``-`` for None, ``inf`` kept, ints as ints."""
    if value is None:
        return "-"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}f}"
    return str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence]) -> list[str]:
    """A plain-text table with right-aligned columns (first column left-aligned)."""
    cells = [[str(h) for h in headers]] + [[fmt(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        return "  ".join([first, *rest]).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    return out + [line(r) for r in cells[1:]]


def results_header(results: dict) -> list[str]:
    """The opening block of results.txt: what ran, on what, how long, the metrics."""
    timing = results.get("timing") or {}
    train = results.get("train") or {}
    lines = [
        f"task:    {results.get('task')}",
        f"model:   {results.get('model')}   config: {results.get('config')}",
        f"data:    {results.get('data_root')}   "
        f"train images: {fmt(results.get('n_train'))}   test images: {fmt(results.get('n_test'))}",
    ]
    if train:
        lines.append(f"trained: {fmt(train.get('epochs'))} epochs, {fmt(train.get('iters'))} iters")
    if results.get("checkpoint"):
        lines.append(f"checkpoint: {results['checkpoint']}")
    lines.append(
        f"timing:  train {fmt(timing.get('train_s'), 1)} s, test {fmt(timing.get('test_s'), 1)} s "
        f"({fmt(timing.get('test_images_per_s'), 1)} images/s)"
    )
    lines += ["", "metrics:"]
    for key, value in (results.get("metrics") or {}).items():
        lines.append(f"  {key:<16} {fmt(value)}")
    return lines


def write_results_txt(work_dir: str | os.PathLike, lines: Sequence[str]) -> Path:
    """Write ``results.txt`` atomically."""
    path = Path(work_dir) / "results.txt"
    atomic_write_text(path, "\n".join(lines).rstrip() + "\n")
    return path


def save_png(array: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an (H, W[, 3]) uint8 array as PNG atomically."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def plot_confusion_matrix(
    matrix: np.ndarray,
    class_names: Sequence[str],
    path: str | os.PathLike,
    title: str = "Confusion matrix",
    normalize: bool = True,
) -> Path:
    """Rows = ground truth, columns = prediction; cells show counts (and row fractions).

    Args:
        matrix: (C, C) counts.
        class_names: C names.
        path: Output PNG.
        title: Figure title. Defaults to ``'Confusion matrix'``.
        normalize: Colour by row fraction (recall per class). Defaults to True.
    """
    m = np.asarray(matrix, dtype=np.float64)
    n = len(class_names)
    side = min(3.0 + 0.6 * n, 16.0)
    fig = new_figure(side + 1.0, side)
    ax = fig.add_subplot()
    rows = m.sum(axis=1, keepdims=True)
    colour = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0) if normalize else m
    im = ax.imshow(colour, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(n), labels=[str(c) for c in class_names], rotation=45, ha="right")
    ax.set_yticks(range(n), labels=[str(c) for c in class_names])
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title(title)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    str(int(m[i, j])),
                    ha="center",
                    va="center",
                    fontsize="small",
                    color="white" if colour[i, j] > 0.5 else "black",
                )
    fig.tight_layout()
    return save_figure(fig, path)


def plot_value_histogram(
    series: dict[str, Sequence[float]],
    path: str | os.PathLike,
    xlabel: str,
    title: str,
) -> Path:
    """Overlaid histograms of one value (e.g. per-image PSNR) for several named series."""
    fig = new_figure(7.0, 4.5)
    ax = fig.add_subplot()
    finite = [np.asarray(v, np.float64) for v in series.values()]
    finite = [v[np.isfinite(v)] for v in finite]
    allv = np.concatenate(finite) if finite else np.zeros(0)
    if allv.size:
        bins = np.histogram_bin_edges(allv, bins=min(40, max(8, allv.size // 3)))
        for (name, _), values in zip(series.items(), finite):
            if values.size:
                ax.hist(values, bins=bins, alpha=0.6, label=f"{name} (mean {values.mean():.2f})")
        ax.legend(fontsize="small")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("images")
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)
