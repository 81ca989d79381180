"""Real images that ship offline with scikit-learn, written as data for the HF tasks.

``sklearn.datasets.load_digits`` holds 1797 real handwritten digits (8x8 px, 17 grey
levels, 10 classes; the UCI "Optical Recognition of Handwritten Digits" set) and
``load_sample_images`` two real photographs (``china.jpg``, ``flower.jpg``, 427x640),
inside the scikit-learn package: every machine with adtool's requirements writes the same
real datasets without a download.

- :func:`make_digits_classification_dataset`: ``<root>/{train,val}/<digit>/*.png``
  (ImageFolder, a stratified 80/20 split), the images at their native 8x8 size.
- :func:`make_digits_detection_dataset` and :func:`make_digits_segmentation_dataset`:
  scenes of 1-3 real digits, each enlarged 3-5x, on a blank canvas (train scenes from the
  training digits, val scenes from the held-out ones), in the COCO and the mask layouts of
  :mod:`adtool.datasets.hf.synthetic_det_seg`; the boxes and masks come from the digits' ink.
- :func:`make_photo_sr_dataset`: ``<root>/{train,val}/HR/*.png`` tiles of the two photos
  (train: china, overlapping; val: flower), low-resolution inputs made by bicubic
  downscaling.
- :func:`make_natural_image_folder`: ``<root>/*.png``, the natural photographs that ship
  with scikit-image (``skimage.data``, a test dependency) and scikit-learn: a small
  offline stand-in for ImageNet (EfficientAD's teacher distillation and penalty images).

Writing is deterministic for a seed: the same seed gives byte-identical files.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from adtool.datasets.hf.seg_masks import IGNORE_INDEX
from adtool.datasets.hf.synthetic_det_seg import png_bytes, write_coco_split
from adtool.fileio import atomic_write_bytes, atomic_write_text

#: Class folder names, in label order.
DIGIT_CLASSES = tuple(str(d) for d in range(10))


def load_digit_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as ``(N, 8, 8)`` uint8 images (0 = paper, 255 = ink) and labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    return images, digits.target.astype(np.int64)


def split_digits(
    labels: np.ndarray, val_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a stratified train / val split of the digits (sorted within each split)."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    from sklearn.model_selection import train_test_split

    train, val = train_test_split(
        np.arange(len(labels)), test_size=val_fraction, stratify=labels, random_state=seed
    )
    return np.sort(train), np.sort(val)


def make_digits_classification_dataset(
    root: str | os.PathLike, val_fraction: float = 0.2, seed: int = 0
) -> Path:
    """Write the real digits as an ImageFolder dataset under ``root``.

    Files are ``<root>/{train,val}/<digit>/<index>.png`` (8x8 grey PNGs, ``<index>`` the
    sample's index in ``load_digits``): 1437 train and 360 val images with the default
    split, every class in both.

    Args:
        root: Output folder.
        val_fraction: Share of each class held out for ``val``. Defaults to 0.2.
        seed: Seed of the stratified split. Defaults to 0.

    Returns:
        ``root`` as a Path.
    """
    root = Path(root)
    images, labels = load_digit_images()
    for split, indices in zip(("train", "val"), split_digits(labels, val_fraction, seed)):
        for index in indices:
            path = root / split / DIGIT_CLASSES[labels[index]] / f"{index:04d}.png"
            atomic_write_bytes(path, png_bytes(images[index]))
    return root


# Ink levels (0..255) of an enlarged digit: above INK a pixel belongs to the digit, below
# PAPER to the background; the blurred rim between is ignored by segmentation.
_INK, _PAPER = 96, 32


def _place(rng: np.random.Generator, sides: list[int], size: int) -> list[tuple[int, int, int]]:
    """``(top, left, side)`` of squares of ``sides`` that do not overlap (a square that
    finds no free place in 50 tries is dropped)."""
    placed: list[tuple[int, int, int]] = []
    for side in sides:
        for _ in range(50):
            y, x = (int(v) for v in rng.integers(0, size - side + 1, 2))
            if all(
                y + side <= py or py + ps <= y or x + side <= px or px + ps <= x
                for py, px, ps in placed
            ):
                placed.append((y, x, side))
                break
    return placed


def digit_scene(
    rng: np.random.Generator, images: np.ndarray, labels: np.ndarray, size: int = 64
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, tuple[int, int, int, int]]]]:
    """One scene of 1-3 real digits drawn from ``images``.

    Returns:
        ``(image (size, size, 3) uint8, ink (size, size) uint8, objects)``; ``objects``
        holds ``(digit, (x1, y1, x2, y2))`` per placed digit, the box the extent of its
        ink (pixels >= 32 of 255), and ``ink`` the placed digits' grey levels.
    """
    count = int(rng.integers(1, 4))
    sides = [8 * int(s) for s in rng.integers(3, 6, count)]
    ink = np.zeros((size, size), np.uint8)
    objects = []
    for y, x, side in _place(rng, sides, size):
        index = int(rng.integers(len(images)))
        big = np.asarray(Image.fromarray(images[index]).resize((side, side), Image.BILINEAR))
        region = ink[y : y + side, x : x + side]
        np.maximum(region, big, out=region)
        ys, xs = np.nonzero(big >= _PAPER)
        box = (x + int(xs.min()), y + int(ys.min()), x + int(xs.max()) + 1, y + int(ys.max()) + 1)
        objects.append((int(labels[index]), box))
    # Dark ink on light paper with a little sensor noise, as a scanned page.
    paper = 235.0 - ink.astype(np.float32) * (200.0 / 255.0) + rng.normal(0, 4, (size, size))
    image = np.repeat(paper.clip(0, 255).astype(np.uint8)[..., None], 3, axis=2)
    return image, ink, objects


def _digit_scenes(split: str, n: int, size: int, seed: int):
    images, labels = load_digit_images()
    indices = split_digits(labels, seed=seed)[0 if split == "train" else 1]
    for k in range(n):
        rng = np.random.default_rng([seed, 0 if split == "train" else 1, k])
        yield f"{k:06d}.png", *digit_scene(rng, images[indices], labels[indices], size)


def make_digits_detection_dataset(
    root: str | os.PathLike, n_train: int = 300, n_val: int = 60, size: int = 64, seed: int = 0
) -> Path:
    """Write real-digit scenes as COCO detection data (categories ``0``..``9``, ids 1..10).

    Args:
        root: Output folder; ``{train,val}/`` and ``annotations/{train,val}.json``.
        n_train: Training scenes. Defaults to 300.
        n_val: Validation scenes. Defaults to 60.
        size: Scene side in pixels (>= 40). Defaults to 64.
        seed: Seed of the digit split and the scenes. Defaults to 0.

    Returns:
        ``root`` as a Path.
    """
    _check_scene_args(n_train, n_val, size)
    root = Path(root)
    for split, n in (("train", n_train), ("val", n_val)):
        scenes = (
            (name, image, objects)
            for name, image, _, objects in _digit_scenes(split, n, size, seed)
        )
        write_coco_split(root, split, scenes, DIGIT_CLASSES)
    return root


def make_digits_segmentation_dataset(
    root: str | os.PathLike, n_train: int = 300, n_val: int = 60, size: int = 64, seed: int = 0
) -> Path:
    """Write real-digit scenes as semantic segmentation data.

    Masks: 0 = paper, 1 + d = ink of digit d, 255 (ignored) on the blurred rim between ink
    and paper; ``classes.txt`` lists ``background, 0, ..., 9``.

    Args:
        root: Output folder; ``{train,val}/``, ``masks/{train,val}/`` and ``classes.txt``.
        n_train: Training scenes. Defaults to 300.
        n_val: Validation scenes. Defaults to 60.
        size: Scene side in pixels (>= 40). Defaults to 64.
        seed: Seed of the digit split and the scenes. Defaults to 0.

    Returns:
        ``root`` as a Path.
    """
    _check_scene_args(n_train, n_val, size)
    root = Path(root)
    for split, n in (("train", n_train), ("val", n_val)):
        for name, image, ink, objects in _digit_scenes(split, n, size, seed):
            mask = np.zeros((size, size), np.uint8)
            for digit, (x1, y1, x2, y2) in objects:
                window = ink[y1:y2, x1:x2]
                target = mask[y1:y2, x1:x2]
                target[window >= _PAPER] = IGNORE_INDEX
                target[window >= _INK] = digit + 1
            atomic_write_bytes(root / split / name, png_bytes(image))
            atomic_write_bytes(root / "masks" / split / name, png_bytes(mask))
    atomic_write_text(root / "classes.txt", "\n".join(("background", *DIGIT_CLASSES)) + "\n")
    return root


def _check_scene_args(n_train: int, n_val: int, size: int) -> None:
    if n_train < 1 or n_val < 1 or size < 40:
        raise ValueError(f"need n_train, n_val >= 1 and size >= 40, got {n_train}, {n_val}, {size}")


def make_photo_sr_dataset(root: str | os.PathLike, size: int = 64, seed: int = 0) -> Path:
    """Write ``size`` px tiles of scikit-learn's two photos as SR data.

    ``train/HR/`` holds tiles of ``china.jpg`` at half-tile strides (228 at 64 px: the
    crops of a training epoch see every part of the photo) and ``val/HR/`` the
    non-overlapping tiles of ``flower.jpg`` (60 at 64 px), so the model is tested on a photo
    it never saw; ``SRPairs`` makes the low-resolution inputs by bicubic downscaling.

    Args:
        root: Output folder.
        size: Tile side in pixels. Defaults to 64.
        seed: Unused (the tiles are fixed); kept for the writers' common signature.

    Returns:
        ``root`` as a Path.
    """
    del seed
    if size < 16:
        raise ValueError(f"size must be >= 16, got {size}")
    from sklearn.datasets import load_sample_images

    photos = load_sample_images()
    by_name = {Path(f).name: img for f, img in zip(photos.filenames, photos.images)}
    root = Path(root)
    for split, name, stride in (("train", "china.jpg", size // 2), ("val", "flower.jpg", size)):
        photo = by_name[name]
        for top in range(0, photo.shape[0] - size + 1, stride):
            for left in range(0, photo.shape[1] - size + 1, stride):
                tile = photo[top : top + size, left : left + size]
                path = root / split / "HR" / f"{Path(name).stem}_{top:03d}_{left:03d}.png"
                atomic_write_bytes(path, png_bytes(np.ascontiguousarray(tile)))
    return root


#: ``skimage.data`` photographs that load without a download (scikit-image >= 0.22):
#: people, animals, objects, textures, space and microscopy. Synthetic images (colorwheel,
#: checkerboard, blobs, phantoms), binary masks and text pages are left out.
SKIMAGE_PHOTOS = (
    "astronaut",
    "brick",
    "camera",
    "cell",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "retina",
    "rocket",
)


def natural_photos(max_side: int = 512) -> dict[str, np.ndarray]:
    """The offline natural photographs, ``name -> uint8 array`` (H x W or H x W x 3).

    The :data:`SKIMAGE_PHOTOS`, the left view of ``skimage.data.stereo_motorcycle`` and
    scikit-learn's ``china`` and ``flower`` (18 photos), each downscaled (area average) so
    that its longer side is at most ``max_side``.

    Raises:
        ImportError: scikit-image is not installed (``pip install scikit-image``).
    """
    try:
        from skimage import data
    except ImportError as err:
        raise ImportError(
            "natural images need scikit-image: pip install 'scikit-image>=0.22'"
        ) from err
    from sklearn.datasets import load_sample_images

    photos = {name: getattr(data, name)() for name in SKIMAGE_PHOTOS}
    photos["motorcycle"] = data.stereo_motorcycle()[0]
    sklearn = load_sample_images()
    for filename, image in zip(sklearn.filenames, sklearn.images):
        photos[Path(filename).stem] = image
    out = {}
    for name in sorted(photos):
        array = photos[name]
        image = Image.fromarray(np.ascontiguousarray(array[..., :3] if array.ndim == 3 else array))
        scale = max_side / max(image.size)
        if scale < 1:
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(size, Image.BOX)
        out[name] = np.asarray(image)
    return out


def make_natural_image_folder(root: str | os.PathLike, max_side: int = 512) -> Path:
    """Write :func:`natural_photos` as ``<root>/<name>.png`` (18 files, ~4 MB at 512 px).

    Any folder of natural images serves EfficientAD's teacher distillation
    (``tools/distill_teacher.py``) and its penalty (``model.penalty_dir``); this one needs
    no download. Deterministic: the same files on every machine with the same packages.

    Args:
        root: Output folder.
        max_side: Longer side of each written image at most. Defaults to 512.

    Returns:
        ``root`` as a Path.
    """
    root = Path(root)
    for name, image in natural_photos(max_side).items():
        atomic_write_bytes(root / f"{name}.png", png_bytes(image))
    return root
