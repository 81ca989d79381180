"""Score histogram, ROC and precision-recall plots of image-level results.

Figures are built with matplotlib's object API on an Agg canvas (no ``pyplot``), so
importing this module never changes the process-wide backend or leaks open figures.
Every file is written atomically: ``<name>.tmp`` in the same folder, then ``os.replace``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from adtool.evaluation.functional import (
    ArrayLike,
    image_aupr,
    image_auroc,
    pr_curve,
    roc_curve,
    to_numpy,
)
from adtool.visualization.canvas import new_figure, save_figure

# Threshold names of the results contract, with a colour and line style each.
_THRESHOLD_STYLES = {
    "f1_percentile": ("tab:red", "-"),
    "f1_uniform": ("tab:purple", "--"),
    "youden_j": ("tab:green", "-."),
    "percentile_95": ("black", ":"),
}


def _one_class_message(labels: np.ndarray) -> str:
    if labels.size == 0:
        return "no images in this split"
    if labels.any():
        return "only anomalous images (label 1) in this split"
    return "only normal images (label 0) in this split"


def _undefined(ax, title: str, labels: np.ndarray) -> None:
    ax.text(
        0.5,
        0.5,
        f"{title} undefined:\n{_one_class_message(labels)}",
        ha="center",
        va="center",
        transform=ax.transAxes,
    )
    ax.set_axis_off()


def plot_histogram(
    scores: ArrayLike, labels: ArrayLike, thresholds: dict | None, path: str | os.PathLike
) -> Path:
    """Histogram of image scores by label with the thresholds drawn as labelled lines.

    Args:
        scores: (N,) image scores.
        labels: (N,) 0 normal / 1 anomalous.
        thresholds: the ``thresholds`` block (``{name: {"value": v, ...}}``); entries whose
            value is None are skipped. May be None.
        path: output PNG.

    Returns:
        The written path.
    """
    s = to_numpy(scores, np.float64).ravel()
    y = to_numpy(labels, np.float64).ravel() > 0
    fig = new_figure(7.0, 4.5)
    ax = fig.add_subplot()
    if s.size:
        bins = np.histogram_bin_edges(s, bins=min(50, max(10, s.size // 4)))
        for mask, name, colour in ((~y, "normal", "tab:blue"), (y, "anomalous", "tab:orange")):
            if mask.any():
                ax.hist(
                    s[mask],
                    bins=bins,
                    alpha=0.6,
                    color=colour,
                    label=f"{name} (n={int(mask.sum())})",
                )
    for name, entry in (thresholds or {}).items():
        value = (entry or {}).get("value")
        if value is None:
            continue
        colour, style = _THRESHOLD_STYLES.get(name, ("gray", "-"))
        ax.axvline(
            value, color=colour, linestyle=style, linewidth=1.5, label=f"{name} = {value:.4g}"
        )
    ax.set_xlabel("anomaly score")
    ax.set_ylabel("images")
    ax.set_title("Image score distribution")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_roc(scores: ArrayLike, labels: ArrayLike, path: str | os.PathLike) -> Path:
    """ROC curve of image scores with the AUROC in the legend.

    With a single class the figure says so instead of drawing a curve.

    Returns:
        The written path.
    """
    y = to_numpy(labels, np.float64).ravel() > 0
    fig = new_figure(5.0, 5.0)
    ax = fig.add_subplot()
    curve = roc_curve(scores, y)
    if curve is None:
        _undefined(ax, "ROC", y)
    else:
        fpr, tpr, _ = curve
        ax.plot(fpr, tpr, color="tab:blue", label=f"AUROC = {image_auroc(scores, y):.4f}")
        ax.plot([0, 1], [0, 1], color="gray", linestyle="--", linewidth=1, label="chance")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title("Image-level ROC")
        ax.legend(loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_pr(scores: ArrayLike, labels: ArrayLike, path: str | os.PathLike) -> Path:
    """Precision-recall curve of image scores (anomalous positive), AP in the legend.

    With a single class the figure says so instead of drawing a curve.

    Returns:
        The written path.
    """
    y = to_numpy(labels, np.float64).ravel() > 0
    fig = new_figure(5.0, 5.0)
    ax = fig.add_subplot()
    curve = pr_curve(scores, y)
    if curve is None:
        _undefined(ax, "Precision-recall", y)
    else:
        precision, recall = curve
        ax.plot(recall, precision, color="tab:blue", label=f"AP = {image_aupr(scores, y):.4f}")
        ax.axhline(
            y.mean(),
            color="gray",
            linestyle="--",
            linewidth=1,
            label=f"anomalous rate = {y.mean():.3f}",
        )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title("Image-level precision-recall")
        ax.legend(loc="lower left")
    fig.tight_layout()
    return save_figure(fig, path)
