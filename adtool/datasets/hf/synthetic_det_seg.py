"""Generated detection and segmentation data: coloured shapes on textured backgrounds.

Each image holds 1-3 non-overlapping shapes of three classes (``rectangle``, ``ellipse``,
``triangle``), each class with its own hue range, on a smooth two-tone texture with fine
grain. Shapes are rasterised from their geometry (no anti-aliasing), so every box is the
exact pixel extent of its shape and every mask pixel is known.

- :func:`make_coco_detection_dataset` writes ``<root>/{train,val}/*.png`` and
  ``<root>/annotations/{train,val}.json`` (COCO: ``bbox`` = ``[x, y, w, h]`` in pixels,
  category ids from 1).
- :func:`make_segmentation_dataset` writes ``<root>/{train,val}/*.png`` and label masks
  ``<root>/masks/{train,val}/*.png`` with the same names (0 = background, 1..3 = the
  shapes, 255 = ignore on a 2-pixel ring along every shape boundary) plus
  ``<root>/classes.txt`` (one class name per line, line i = label i).

Each image comes from its own seed derived from (seed, split, index): a dataset is
byte-identical for a seed, and changing a count keeps the other images.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from adtool.datasets.hf.seg_masks import IGNORE_INDEX
from adtool.fileio import atomic_write_bytes, atomic_write_text

#: Object classes of the generated data, in label order (COCO category id = label + 1).
DET_CLASSES = ("rectangle", "ellipse", "triangle")
#: Segmentation classes: label 0 is the background.
SEG_CLASSES = ("background", *DET_CLASSES)

# Hue range (degrees) per class: distinct colours make the tiny models learn quickly.
_HUES = {"rectangle": (345.0, 375.0), "ellipse": (95.0, 145.0), "triangle": (200.0, 245.0)}
_SPLIT_IDS = {"train": 0, "val": 1}


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    """One HSV colour (h in degrees, s and v in 0..1) -> RGB floats in 0..255."""
    h = (h % 360.0) / 60.0
    c = v * s
    x = c * (1 - abs(h % 2 - 1))
    rgb = [(c, x, 0), (x, c, 0), (0, c, x), (0, x, c), (x, 0, c), (c, 0, x)][int(h) % 6]
    return (np.array(rgb) + (v - c)) * 255.0


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) float background: two muted colours mixed by smooth noise + grain."""
    small = max(2, size // 16)
    noise = rng.standard_normal((small, small)).astype(np.float32)
    from scipy import ndimage

    noise = ndimage.zoom(noise, size / small, order=3)[:size, :size]
    weight = 1.0 / (1.0 + np.exp(-2.0 * noise))
    base = [_hsv_to_rgb(rng.uniform(0, 360), rng.uniform(0.0, 0.25), rng.uniform(0.3, 0.7))]
    base.append(_hsv_to_rgb(rng.uniform(0, 360), rng.uniform(0.0, 0.25), rng.uniform(0.3, 0.7)))
    image = weight[..., None] * base[0] + (1 - weight[..., None]) * base[1]
    return image + rng.normal(0.0, 6.0, (size, size, 3))


def _shape_mask(kind: str, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """Boolean (size, size) mask of one shape inside ``box`` = (x0, y0, x1, y1), x1/y1 excl."""
    x0, y0, x1, y1 = box
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    inside = (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)
    if kind == "rectangle":
        return inside
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    if kind == "ellipse":
        return inside & (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0)
    # Triangle with its apex at the top centre and its base on the bottom edge.
    return inside & (np.abs(xx - cx) <= rx * (yy - y0) / (y1 - y0))


def _place_boxes(rng: np.random.Generator, size: int, n: int) -> list[tuple[int, int, int, int]]:
    """Up to ``n`` boxes with sides in 20-45 % of ``size``, at least 3 px apart."""
    boxes: list[tuple[int, int, int, int]] = []
    for _ in range(50 * n):
        if len(boxes) == n:
            break
        w, h = (int(rng.uniform(0.2, 0.45) * size) for _ in range(2))
        x0, y0 = int(rng.integers(1, size - w)), int(rng.integers(1, size - h))
        box = (x0, y0, x0 + w, y0 + h)
        apart = all(
            box[0] >= b[2] + 3 or b[0] >= box[2] + 3 or box[1] >= b[3] + 3 or b[1] >= box[3] + 3
            for b in boxes
        )
        if apart:
            boxes.append(box)
    return boxes


def draw_scene(
    rng: np.random.Generator, size: int
) -> tuple[np.ndarray, list[tuple[int, tuple[int, int, int, int]]], np.ndarray]:
    """One generated image with its objects and label mask.

    Args:
        rng: Source of randomness.
        size: Image side in pixels.

    Returns:
        ``(image, objects, label_mask)``: uint8 (size, size, 3) RGB; a list of
        ``(label, (x0, y0, x1, y1))`` with ``label`` indexing :data:`DET_CLASSES` and the box
        the exact pixel extent of the shape (x1/y1 exclusive); uint8 (size, size) mask with
        0 = background, label + 1 for the shapes, no ignore ring.
    """
    image = _texture(rng, size)
    label_mask = np.zeros((size, size), np.uint8)
    objects = []
    for box in _place_boxes(rng, size, int(rng.integers(1, 4))):
        label = int(rng.integers(len(DET_CLASSES)))
        kind = DET_CLASSES[label]
        mask = _shape_mask(kind, box, size)
        ys, xs = np.nonzero(mask)
        exact = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        colour = _hsv_to_rgb(rng.uniform(*_HUES[kind]), rng.uniform(0.6, 0.95), rng.uniform(0.6, 1))
        # A vertical light gradient keeps the shapes from being flat patches.
        shade = np.linspace(1.1, 0.85, size, dtype=np.float32)[:, None, None]
        image = np.where(mask[..., None], colour * shade + rng.normal(0, 4, image.shape), image)
        label_mask[mask] = label + 1
        objects.append((label, exact))
    return np.clip(image, 0, 255).astype(np.uint8), objects, label_mask


def png_bytes(array: np.ndarray) -> bytes:
    """A uint8 image (H x W or H x W x 3) encoded as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _scenes(split: str, n: int, size: int, seed: int):
    for index in range(n):
        rng = np.random.default_rng([seed, _SPLIT_IDS[split], index])
        yield f"{index:06d}.png", draw_scene(rng, size)


def _check_args(n_train: int, n_val: int, size: int) -> None:
    if n_train < 1 or n_val < 1:
        raise ValueError(f"n_train and n_val must be >= 1, got {n_train}, {n_val}")
    if size < 32:
        raise ValueError(f"size must be >= 32 pixels, got {size}")


def make_coco_detection_dataset(
    root: str | os.PathLike,
    n_train: int = 200,
    n_val: int = 50,
    size: int = 128,
    seed: int = 0,
) -> Path:
    """Write a generated COCO-format detection dataset under ``root``.

    Args:
        root: Output folder; ``{train,val}/`` and ``annotations/`` are created in it.
        n_train: Training images. Defaults to 200.
        n_val: Validation images. Defaults to 50.
        size: Image side in pixels. Defaults to 128.
        seed: Base seed. Defaults to 0.

    Returns:
        ``root`` as a Path.
    """
    _check_args(n_train, n_val, size)
    root = Path(root)
    for split, n in (("train", n_train), ("val", n_val)):
        scenes = (
            (name, image, objects) for name, (image, objects, _) in _scenes(split, n, size, seed)
        )
        write_coco_split(root, split, scenes, DET_CLASSES)
    return root


def write_coco_split(
    root: Path, split: str, scenes: Iterable[tuple[str, np.ndarray, list]], classes: Sequence[str]
) -> None:
    """Write scenes as ``<root>/<split>/<name>`` PNGs and ``annotations/<split>.json``.

    Args:
        root: Dataset folder.
        split: ``'train'`` or ``'val'``.
        scenes: ``(file name, (H, W, 3) uint8 image, [(label, (x0, y0, x1, y1)), ...])``.
        classes: Category names in label order (COCO category id = label + 1; image and
            annotation ids count from 1).
    """
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(classes)]
    images, annotations = [], []
    for image_id, (name, image, objects) in enumerate(scenes, 1):
        atomic_write_bytes(root / split / name, png_bytes(image))
        height, width = image.shape[:2]
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for label, (x0, y0, x1, y1) in objects:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": label + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": 0,
                }
            )
    coco = {"images": images, "annotations": annotations, "categories": categories}
    atomic_write_text(root / "annotations" / f"{split}.json", json.dumps(coco))


def make_segmentation_dataset(
    root: str | os.PathLike,
    n_train: int = 200,
    n_val: int = 50,
    size: int = 64,
    seed: int = 0,
) -> Path:
    """Write a generated semantic-segmentation dataset under ``root``.

    Args:
        root: Output folder; ``{train,val}/``, ``masks/{train,val}/`` and ``classes.txt``
            are created in it.
        n_train: Training images. Defaults to 200.
        n_val: Validation images. Defaults to 50.
        size: Image side in pixels. Defaults to 64.
        seed: Base seed. Defaults to 0.

    Returns:
        ``root`` as a Path.
    """
    from scipy import ndimage

    _check_args(n_train, n_val, size)
    root = Path(root)
    for split, n in (("train", n_train), ("val", n_val)):
        for name, (image, _, label_mask) in _scenes(split, n, size, seed):
            # Boundary pixels are ambiguous in real annotations; mark them ignored.
            objects = label_mask > 0
            ring = ndimage.binary_dilation(objects) & ~ndimage.binary_erosion(objects)
            label_mask = np.where(ring, IGNORE_INDEX, label_mask).astype(np.uint8)
            atomic_write_bytes(root / split / name, png_bytes(image))
            atomic_write_bytes(root / "masks" / split / name, png_bytes(label_mask))
    atomic_write_text(root / "classes.txt", "\n".join(SEG_CLASSES) + "\n")
    return root
