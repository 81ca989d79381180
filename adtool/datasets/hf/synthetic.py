"""Generated classification and super-resolution data for the tiny HF configs and tests.

- :func:`make_classification_dataset` writes ``<root>/{train,val}/<class>/*.png``: four
  classes (:data:`CLS_CLASSES`) of procedural pictures - a filled disk, parallel stripes, a
  checkerboard and a grid of dots - with random colours, sizes, positions, angles and
  periods (6-13 px), plus pixel noise. Stripes / checker / dots differ only in the layout of
  the same two colours, which a patch embedding must learn.
- :func:`make_sr_dataset` writes ``<root>/{train,val}/HR/*.png`` and (unless
  ``write_lr=False``) ``LR_x<scale>/*.png`` made by bicubic downscaling: procedural
  textures with sharp edges (polygons, disks, lines and stripes of several widths over a
  smooth gradient), the detail bicubic upscaling blurs.

Each image comes from its own seed derived from (seed, split, index[, class]), so a dataset
is byte-identical for a seed. Detection and segmentation generators live in
:mod:`adtool.datasets.hf.synthetic_det_seg`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from adtool.datasets.hf.synthetic_det_seg import png_bytes
from adtool.datasets.hf.transforms import bicubic_downscale
from adtool.fileio import atomic_write_bytes

#: Classes of the generated classification data, in label order.
CLS_CLASSES = ("disk", "stripes", "checker", "dots")
_SPLIT_IDS = {"train": 0, "val": 1}


def _colour_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Foreground and background colours: grey levels >= 120 apart, each mildly tinted.

    A strong luminance contrast keeps the class in the layout (what a small ViT trained
    from scratch learns in minutes) rather than in a colour-invariance it would need many
    more images to learn.
    """
    while True:
        fg, bg = rng.uniform(0, 255, 2)
        if abs(fg - bg) >= 120:
            break
    tint = 1.0 - rng.uniform(0.0, 0.3, (2, 3))
    return (fg * tint[0]).astype(np.float32), (bg * tint[1]).astype(np.float32)


def _grid(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates rotated by a random angle, centred on the image."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - (size - 1) / 2
    angle = rng.uniform(0, np.pi)
    c, s = np.cos(angle), np.sin(angle)
    return c * xx + s * yy, -s * xx + c * yy


def classification_image(rng: np.random.Generator, kind: str, size: int = 64) -> np.ndarray:
    """One (size, size, 3) uint8 picture of class ``kind`` (see :data:`CLS_CLASSES`)."""
    fg, bg = _colour_pair(rng)
    if kind == "disk":
        radius = rng.uniform(0.18, 0.32) * size
        cy, cx = rng.uniform(radius, size - radius, 2)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    else:
        u, v = _grid(size, rng)
        period = rng.uniform(0.1, 0.2) * size
        pu, pv = (u + rng.uniform(0, period)) % period, (v + rng.uniform(0, period)) % period
        if kind == "stripes":
            inside = pu < period / 2
        elif kind == "checker":
            inside = (pu < period / 2) ^ (pv < period / 2)
        elif kind == "dots":
            inside = (pu - period / 2) ** 2 + (pv - period / 2) ** 2 <= (0.25 * period) ** 2
        else:
            raise ValueError(f"unknown class {kind!r}; known: {CLS_CLASSES}")
    img = np.where(inside[..., None], fg, bg)
    img = img + rng.normal(0, 8.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_classification_dataset(
    root: str | os.PathLike,
    n_train_per_class: int = 200,
    n_val_per_class: int = 50,
    size: int = 64,
    seed: int = 0,
    classes: tuple[str, ...] = CLS_CLASSES,
) -> Path:
    """Write a generated ImageFolder classification dataset under ``root``.

    Args:
        root: Output folder; ``{train,val}/<class>/`` are created in it.
        n_train_per_class: Training images per class. Defaults to 200.
        n_val_per_class: Validation images per class. Defaults to 50.
        size: Image side in pixels. Defaults to 64.
        seed: Base seed. Defaults to 0.
        classes: Classes to write, a subset of :data:`CLS_CLASSES`. Defaults to all four.

    Returns:
        ``root`` as a Path.
    """
    if n_train_per_class < 1 or n_val_per_class < 1:
        raise ValueError("n_train_per_class and n_val_per_class must be >= 1")
    root = Path(root)
    for split, n in (("train", n_train_per_class), ("val", n_val_per_class)):
        for kind in classes:
            for index in range(n):
                rng = np.random.default_rng(
                    [seed, _SPLIT_IDS[split], CLS_CLASSES.index(kind), index]
                )
                image = classification_image(rng, kind, size)
                atomic_write_bytes(root / split / kind / f"{index:05d}.png", png_bytes(image))
    return root


def sr_image(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """One (size, size, 3) uint8 texture with sharp edges over a smooth gradient."""
    a, b = rng.uniform(30, 225, 3), rng.uniform(30, 225, 3)
    u, _ = _grid(size, rng)
    t = (u - u.min()) / max(float(np.ptp(u)), 1e-6)
    base = a + (b - a) * t[..., None]
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(4, 9))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = rng.integers(0, 4)
        x0, y0 = rng.uniform(-0.1, 0.9, 2) * size
        w, h = rng.uniform(0.1, 0.5, 2) * size
        if kind == 0:
            n = int(rng.integers(3, 6))
            angles = np.sort(rng.uniform(0, 2 * np.pi, n))
            pts = [(x0 + w * np.cos(t_), y0 + h * np.sin(t_)) for t_ in angles]
            draw.polygon(pts, fill=colour)
        elif kind == 1:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=colour)
        elif kind == 2:
            x1, y1 = rng.uniform(0, 1, 2) * size
            draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(1, 4)))
        else:
            # A patch of stripes 1-3 pixels wide: the finest detail x2 loses.
            width = int(rng.integers(1, 4))
            for k in range(int(x0), int(x0 + w), 2 * width):
                draw.rectangle((k, y0, k + width - 1, y0 + h), fill=colour)
    arr = np.asarray(image, dtype=np.float32) + rng.normal(0, 2.0, (size, size, 3))
    return np.clip(arr, 0, 255).astype(np.uint8)


def make_sr_dataset(
    root: str | os.PathLike,
    n_train: int = 200,
    n_val: int = 40,
    size: int = 64,
    scale: int = 2,
    seed: int = 0,
    write_lr: bool = True,
) -> Path:
    """Write a generated super-resolution dataset under ``root``.

    Args:
        root: Output folder; ``{train,val}/HR/`` (and ``LR_x<scale>/``) are created in it.
        n_train: Training HR images. Defaults to 200.
        n_val: Validation HR images. Defaults to 40.
        size: HR image side in pixels (a multiple of ``scale``). Defaults to 64.
        scale: Downscaling factor of the LR images. Defaults to 2.
        seed: Base seed. Defaults to 0.
        write_lr: Write ``LR_x<scale>/`` (same file names); False leaves LR images to be
            made on the fly. Defaults to True.

    Returns:
        ``root`` as a Path.
    """
    if n_train < 1 or n_val < 1:
        raise ValueError(f"n_train and n_val must be >= 1, got {n_train}, {n_val}")
    if size % scale:
        raise ValueError(f"size {size} must be a multiple of scale {scale}")
    root = Path(root)
    for split, n in (("train", n_train), ("val", n_val)):
        for index in range(n):
            rng = np.random.default_rng([seed, _SPLIT_IDS[split], index])
            hr = sr_image(rng, size)
            name = f"{index:05d}.png"
            atomic_write_bytes(root / split / "HR" / name, png_bytes(hr))
            if write_lr:
                lr = bicubic_downscale(hr, scale)
                atomic_write_bytes(root / split / f"LR_x{scale}" / name, png_bytes(lr))
    return root
