"""Anomaly-map overlays on the test images, a few per defect type.

Each PNG shows, side by side: the input image as the model saw it (after the pipeline's
resize and crop; else the file resized to the map size), the anomaly map as
a jet heat overlay (alpha 0.5) and, when known, the ground-truth mask contour (green) and
the region predicted at the pixel threshold (dashed red contour). Every map shares one colour
scale, the global min/max of all maps, so brightness is comparable across images. Uses
matplotlib's Agg canvas without ``pyplot`` (see :mod:`adtool.visualization.plots`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from PIL import Image

from adtool.visualization.canvas import new_figure, save_figure


def _load_image(
    path: str | None, height: int, width: int, seen: np.ndarray | None = None
) -> np.ndarray | None:
    """The image as the model saw it (``seen``, after resize and crop) at the map size;
    else the file at ``path`` resized to the map size."""
    if seen is not None:
        if seen.shape[:2] == (height, width):
            return seen
        return np.asarray(Image.fromarray(seen).resize((width, height), Image.BILINEAR))
    if not path:
        return None
    try:
        with Image.open(path) as img:
            img = img.convert("RGB").resize((width, height), Image.BILINEAR)
            return np.asarray(img)
    except OSError:
        return None


def _safe_name(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name) or "_"


def _draw_contour(ax, region: np.ndarray, colour: str, width: float, style: str) -> None:
    if region.any() and not region.all():
        ax.contour(
            region.astype(np.float32),
            levels=[0.5],
            colors=colour,
            linewidths=width,
            linestyles=style,
        )


def save_overlays(
    arrays: dict,
    out_dir: str | os.PathLike,
    max_per_defect: int = 3,
    threshold: float | None = None,
) -> list[Path]:
    """Write overlays to ``<out_dir>/maps/<defect>/<stem>.png``.

    Args:
        arrays: ``AnomalyMetric.last_arrays``: ``maps`` (N, H, W) or None, ``masks``
            (N, H, W) or None, ``img_paths``, ``defect_types``, ``scores``; optional
            ``labels`` and ``images`` (the model's uint8 (H, W, 3) inputs, or Nones).
        out_dir: folder that receives ``maps/``.
        max_per_defect: images per defect type, ``good`` included, in test-set order.
            Defaults to 3.
        threshold: anomaly-map value at or above which a pixel is predicted anomalous; its
            region is outlined when given. Defaults to None.

    Returns:
        The written paths; empty when ``arrays`` has no maps.
    """
    maps = arrays.get("maps")
    if maps is None or max_per_defect <= 0:
        return []
    maps = np.asarray(maps)
    masks = arrays.get("masks")
    paths = list(arrays.get("img_paths") or [None] * len(maps))
    defects = [str(d) for d in (arrays.get("defect_types") or ["unknown"] * len(maps))]
    scores = arrays.get("scores")
    seen = list(arrays.get("images") or [None] * len(maps))
    vmin, vmax = float(maps.min()), float(maps.max())
    if vmax <= vmin:
        vmax = vmin + 1.0
    height, width = maps.shape[-2:]
    written: list[Path] = []
    for defect in sorted(set(defects)):
        chosen = [i for i, d in enumerate(defects) if d == defect][:max_per_defect]
        folder = Path(out_dir) / "maps" / _safe_name(defect)
        used: set[str] = set()
        for i in chosen:
            stem = _safe_name(Path(paths[i]).stem if paths[i] else f"{i:05d}")
            if stem in used:  # same file name from two subfolders
                stem = f"{stem}_{i}"
            used.add(stem)
            amap = maps[i].astype(np.float32)
            mask = None if masks is None else np.asarray(masks[i]) > 0
            image = _load_image(paths[i], height, width, seen[i])
            third = mask is not None or threshold is not None
            fig = new_figure(3.2 * (3 if third else 2), 3.6)
            axes = fig.subplots(1, 3 if third else 2)
            background = image if image is not None else np.full((height, width, 3), 127, np.uint8)
            axes[0].imshow(background)
            axes[0].set_title(
                "input" if image is not None else "input (not readable)", fontsize="small"
            )
            axes[1].imshow(background)
            axes[1].imshow(amap, cmap="jet", alpha=0.5, vmin=vmin, vmax=vmax)
            score = "" if scores is None else f" (score {float(scores[i]):.4g})"
            axes[1].set_title(f"anomaly map{score}", fontsize="small")
            if third:
                axes[2].imshow(background)
                parts = []
                if mask is not None:
                    _draw_contour(axes[2], mask, "lime", 2.5, "solid")
                    parts.append("gt: green")
                if threshold is not None:
                    _draw_contour(axes[2], amap >= threshold, "red", 1.2, "dashed")
                    parts.append(f"map >= {threshold:.4g}: red")
                axes[2].set_title(", ".join(parts), fontsize="small")
            for ax in axes:
                ax.set_axis_off()
            fig.suptitle(f"{defect}: {Path(paths[i]).name if paths[i] else i}", fontsize="small")
            fig.tight_layout()
            written.append(save_figure(fig, folder / f"{stem}.png"))
    return written
