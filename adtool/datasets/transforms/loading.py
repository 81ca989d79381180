"""Loading transforms: image file -> RGB uint8 array, mask file -> 0/1 uint8 array."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from adtool.errors import ConfigError, DataError
from adtool.registry import TRANSFORMS

_HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def _open(path: str | Path, what: str) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise DataError(f"{what} {path} not found; check the dataset folder") from None
    except OSError as err:
        raise DataError(f"{what} {path} cannot be read ({err}); replace or remove it") from None
    return image


def _high_bit_to_uint8(image: Image.Image, high_bit_scale: str) -> np.ndarray:
    """A 16/32-bit or float single-channel image as uint8 (H, W)."""
    arr = np.asarray(image).astype(np.float64)
    peak = float(arr.max()) if arr.size else 0.0
    if high_bit_scale == "max":
        full = peak
    elif image.mode == "F":
        full = 1.0 if peak <= 1.0 else peak
    else:
        # 32-bit 'I' data beyond the 16-bit range has no fixed full scale.
        full = 65535.0 if peak <= 65535 else peak
    full = max(full, 1e-12)
    return np.clip(np.rint(arr / full * 255.0), 0, 255).astype(np.uint8)


def image_to_rgb(image: Image.Image, high_bit_scale: str = "fixed") -> np.ndarray:
    """Convert a PIL image of any mode to an RGB uint8 array (H, W, 3).

    Transparent images are composited on black; palette images go through RGB(A); CMYK,
    YCbCr, LAB and HSV use PIL's conversion; 1-bit images become 0/255.

    Args:
        image: The image.
        high_bit_scale: How 16-bit (``I;16*``, ``I``) images become 8-bit. ``'fixed'``
            maps 65535 to 255 for every image, so brightness stays comparable across a
            dataset (12-bit data stored in 16 bits looks dark but keeps its order);
            ``'max'`` maps each image's own maximum to 255. Float (``F``) images in [0, 1]
            are scaled by 255, others by their maximum. Defaults to ``'fixed'``.

    Returns:
        The RGB array.
    """
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in _HIGH_BIT_MODES:
        gray = _high_bit_to_uint8(image, high_bit_scale)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode in _ALPHA_MODES:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
        rgb = rgba[..., :3] * (rgba[..., 3:] / 255.0)
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    if image.mode in ("1", "L"):
        gray = np.asarray(image.convert("L"), dtype=np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    return np.array(image.convert("RGB"), dtype=np.uint8)


def mask_to_binary(image: Image.Image) -> np.ndarray:
    """A mask image as uint8 (H, W) with 1 where any (non-alpha) channel is > 0.

    Palette masks are read as their indices (index 0 = background), as VisA stores them.
    """
    arr = np.asarray(image)
    if arr.ndim == 3:
        if image.mode in _ALPHA_MODES:
            arr = arr[..., :-1]
        arr = arr.max(axis=2)
    return (arr > 0).astype(np.uint8)


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a 0/1 mask to ``shape`` (H, W)."""
    if mask.shape == tuple(shape):
        return mask
    h, w = shape
    return np.array(Image.fromarray(mask).resize((w, h), Image.NEAREST), dtype=np.uint8)


@TRANSFORMS.register_module()
class LoadAnomalyImage:
    """Read ``results['img_path']`` into ``img`` (RGB uint8 H x W x 3) of any file mode.

    Sets ``img``, ``ori_shape`` and ``img_shape`` (both (H, W)).

    Args:
        high_bit_scale: ``'fixed'`` (65535 -> 255) or ``'max'`` (each image's maximum ->
            255) for 16-bit images; see :func:`image_to_rgb`. Defaults to ``'fixed'``.
    """

    #: Same output for the same input: the engine may cache it (adtool.engine.feature_cache).
    random = False

    def __init__(self, high_bit_scale: str = "fixed") -> None:
        if high_bit_scale not in ("fixed", "max"):
            raise ConfigError(
                f"LoadAnomalyImage high_bit_scale must be 'fixed' or 'max', got {high_bit_scale!r}"
            )
        self.high_bit_scale = high_bit_scale

    def __call__(self, results: dict) -> dict:
        with _open(results["img_path"], "image") as image:
            img = image_to_rgb(image, self.high_bit_scale)
        results["img"] = img
        results["ori_shape"] = img.shape[:2]
        results["img_shape"] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(high_bit_scale={self.high_bit_scale!r})"


@TRANSFORMS.register_module()
class LoadAnomalyMask:
    """Read ``results['mask_path']`` into ``gt_mask`` (uint8 0/1, H x W of ``img``).

    Pixels > 0 are defects. A mask whose size differs from the image is resized with
    nearest neighbour (the dataset logs one warning with the count of such masks). Without
    ``mask_path``: a normal image of a dataset with masks gets an all-zero mask; otherwise
    (dataset without masks) ``gt_mask`` stays absent. Must come after
    :class:`LoadAnomalyImage`.
    """

    #: Same output for the same input: the engine may cache it (adtool.engine.feature_cache).
    random = False

    def __call__(self, results: dict) -> dict:
        if "img_shape" not in results:
            raise ConfigError(
                "LoadAnomalyMask needs the image size: put LoadAnomalyImage before it in the "
                "pipeline"
            )
        shape = tuple(results["img_shape"])
        path = results.get("mask_path")
        if path:
            with _open(path, "mask") as image:
                results["gt_mask"] = resize_mask(mask_to_binary(image), shape)
        elif results.get("has_masks", True) and int(results.get("gt_label", 0)) == 0:
            results["gt_mask"] = np.zeros(shape, dtype=np.uint8)
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
