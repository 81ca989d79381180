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


# worst/: the images of the HTML report's false-positive / false-negative grid.
WORST_DIR = "worst"
WORST_INDEX = "worst.json"
_GT_COLOUR = (0, 255, 0)
_PRED_COLOUR = (255, 0, 0)


def _edge(region: np.ndarray) -> np.ndarray:
    """The boundary pixels of a boolean region, 2 px wide on images of 128 px and more."""
    from scipy import ndimage

    edge = region & ~ndimage.binary_erosion(region, border_value=0)
    if min(region.shape) >= 128:
        edge = ndimage.binary_dilation(edge) & region
    return edge


def compose_overlay(
    image: np.ndarray,
    amap: np.ndarray | None,
    vmin: float = 0.0,
    vmax: float = 1.0,
    mask: np.ndarray | None = None,
    threshold: float | None = None,
) -> np.ndarray:
    """The input and, beside it, the anomaly map blended on it (jet, alpha 0.5), as pixels.

    Drawn without a figure (a few milliseconds per image): the ground-truth mask outline
    in green and the region ``amap >= threshold`` in red on the map panel. Without a map
    the input alone.

    Args:
        image: (H, W, 3) uint8 input.
        amap: (H, W) anomaly map at the image size, or None.
        vmin: map value drawn as the bottom of the colour scale. Defaults to 0.0.
        vmax: map value drawn as its top. Defaults to 1.0.
        mask: (H, W) ground truth, or None. Defaults to None.
        threshold: pixel threshold whose region is outlined, or None. Defaults to None.

    Returns:
        (H, W, 3) or (H, 2 W + gap, 3) uint8.
    """
    if amap is None:
        return image
    from matplotlib import colormaps

    span = vmax - vmin if vmax > vmin else 1.0
    heat = colormaps["jet"](np.clip((amap.astype(np.float32) - vmin) / span, 0.0, 1.0))
    blend = (0.5 * image.astype(np.float32) + 127.5 * heat[..., :3]).astype(np.uint8)
    if threshold is not None:
        blend[_edge(amap >= threshold)] = _PRED_COLOUR
    if mask is not None:
        blend[_edge(np.asarray(mask) > 0)] = _GT_COLOUR
    gap = np.full((image.shape[0], max(2, image.shape[1] // 32), 3), 255, np.uint8)
    return np.concatenate([image, gap, blend], axis=1)


def save_worst_cases(
    arrays: dict,
    out_dir: str | os.PathLike,
    selection: dict,
    threshold: float | None = None,
) -> Path:
    """Write the images of ``selection`` to ``<out_dir>/worst/`` and their index.

    One PNG per image (:func:`compose_overlay`: input + map overlay, or the input alone
    for a method without maps), named ``fp_<rank>_<stem>.png`` / ``fn_<rank>_<stem>.png``,
    then ``worst.json`` (the selection with each image's path, defect, label and file;
    written last, atomically). PNGs of an earlier run that the new index does not name
    are removed.

    Args:
        arrays: ``AnomalyMetric.last_arrays`` (``maps`` may be None).
        out_dir: the category's results folder.
        selection: :func:`adtool.evaluation.report.worst_cases` output.
        threshold: pixel threshold outlined on the maps. Defaults to None.

    Returns:
        The path of ``worst.json``.
    """
    import json

    from adtool.fileio import atomic_path, atomic_write_text

    folder = Path(out_dir) / WORST_DIR
    folder.mkdir(parents=True, exist_ok=True)
    maps = arrays.get("maps")
    maps = None if maps is None else np.asarray(maps)
    masks = arrays.get("masks")
    n = len(arrays["scores"])
    paths = list(arrays.get("img_paths") or [None] * n)
    defects = [str(d) for d in (arrays.get("defect_types") or ["unknown"] * n)]
    labels = arrays.get("labels")
    seen = list(arrays.get("images") or [None] * n)
    vmin, vmax = (0.0, 1.0) if maps is None else (float(maps.min()), float(maps.max()))
    index = {k: v for k, v in selection.items() if k not in ("false_positives", "false_negatives")}
    index["has_maps"] = maps is not None
    index["pixel_threshold"] = threshold
    written = set()
    for key, prefix in (("false_positives", "fp"), ("false_negatives", "fn")):
        entries = []
        for rank, item in enumerate(selection.get(key) or [], start=1):
            i = item["index"]
            if maps is not None:
                height, width = maps.shape[-2:]
            elif seen[i] is not None:
                height, width = seen[i].shape[:2]
            else:
                height = width = None
            image = _worst_image(paths[i], height, width, seen[i])
            readable = image is not None
            if image is None:
                size = (height or 128, width or 128)
                image = np.full((*size, 3), 127, np.uint8)
            mask = None if masks is None else np.asarray(masks[i])
            pixels = compose_overlay(
                image, None if maps is None else maps[i], vmin, vmax, mask, threshold
            )
            stem = _safe_name(Path(paths[i]).stem if paths[i] else f"{i:05d}")
            name = f"{prefix}_{rank:02d}_{stem}.png"
            with atomic_path(folder / name) as tmp:
                # 256 colours: half the bytes of the report page that embeds them.
                Image.fromarray(pixels).quantize(256, method=Image.Quantize.FASTOCTREE).save(
                    tmp, format="png"
                )
            written.add(name)
            entries.append(
                {
                    **item,
                    "rank": rank,
                    "img_path": paths[i],
                    "defect_type": defects[i],
                    "gt_label": None if labels is None else int(labels[i]),
                    "file": f"{WORST_DIR}/{name}",
                    "image_readable": readable,
                }
            )
        index[key] = entries
    for old in folder.glob("*.png"):
        if old.name not in written:
            old.unlink(missing_ok=True)
    atomic_write_text(folder / WORST_INDEX, json.dumps(index, indent=2, allow_nan=False) + "\n")
    return folder / WORST_INDEX


def _worst_image(
    path: str | None, height: int | None, width: int | None, seen: np.ndarray | None
) -> np.ndarray | None:
    """The image as the model saw it at (height, width); the file itself (at most 256 px)
    when there is no size to match."""
    if height is not None:
        return _load_image(path, height, width, seen)
    if not path:
        return None
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            img.thumbnail((256, 256))
            return np.asarray(img)
    except OSError:
        return None
