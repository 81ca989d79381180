"""Geometric transforms that move the image and its mask together.

Each reads ``img`` (H x W x 3 uint8) and, when present, ``gt_mask`` (H x W uint8 0/1), and
updates ``img_shape``. The image is interpolated bilinearly, the mask by nearest
neighbour, so it stays binary and the same size as the image. Randomness comes from
numpy's global generator, which mmengine seeds (``randomness=dict(seed=...)``) per worker.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from adtool.errors import ConfigError
from adtool.registry import TRANSFORMS


def _pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    """``size`` as (H, W): an int means a square."""
    if isinstance(size, int):
        pair = (size, size)
    elif isinstance(size, Sequence) and len(size) == 2:
        pair = (int(size[0]), int(size[1]))
    else:
        raise ConfigError(f"{name} size must be an int or (height, width), got {size!r}")
    if min(pair) <= 0:
        raise ConfigError(f"{name} size must be positive, got {size!r}")
    return pair


def _check_prob(prob: float, name: str) -> float:
    if not 0.0 <= prob <= 1.0:
        raise ConfigError(f"{name} prob must be in [0, 1], got {prob}")
    return float(prob)


def _apply(results: dict, image_fn, mask_fn) -> dict:
    results["img"] = np.ascontiguousarray(image_fn(results["img"]))
    if results.get("gt_mask") is not None:
        results["gt_mask"] = np.ascontiguousarray(mask_fn(results["gt_mask"]))
    results["img_shape"] = results["img"].shape[:2]
    return results


@TRANSFORMS.register_module()
class Resize:
    """Resize to a fixed size: image bilinear with antialiasing, mask nearest.

    Args:
        size: Output (height, width); an int gives a square.
    """

    #: Same output for the same input: the engine may cache it (adtool.engine.feature_cache).
    random = False

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _pair(size, "Resize")

    def __call__(self, results: dict) -> dict:
        h, w = self.size

        def image_fn(img: np.ndarray) -> np.ndarray:
            if img.shape[:2] == (h, w):
                return img
            # PIL widens its bilinear kernel when shrinking, i.e. it antialiases.
            return np.array(Image.fromarray(img).resize((w, h), Image.BILINEAR))

        def mask_fn(mask: np.ndarray) -> np.ndarray:
            if mask.shape == (h, w):
                return mask
            return np.array(Image.fromarray(mask).resize((w, h), Image.NEAREST))

        return _apply(results, image_fn, mask_fn)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


@TRANSFORMS.register_module()
class CenterCrop:
    """Crop the centre; a side smaller than the crop is zero-padded symmetrically first.

    Args:
        size: Output (height, width); an int gives a square.
    """

    #: Same output for the same input: the engine may cache it (adtool.engine.feature_cache).
    random = False

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _pair(size, "CenterCrop")

    def _crop(self, arr: np.ndarray) -> np.ndarray:
        h, w = self.size
        ph, pw = max(h - arr.shape[0], 0), max(w - arr.shape[1], 0)
        if ph or pw:
            pad = [(ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)] + [(0, 0)] * (arr.ndim - 2)
            arr = np.pad(arr, pad)
        top = (arr.shape[0] - h) // 2
        left = (arr.shape[1] - w) // 2
        return arr[top : top + h, left : left + w]

    def __call__(self, results: dict) -> dict:
        return _apply(results, self._crop, self._crop)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


@TRANSFORMS.register_module()
class RandomHorizontalFlip:
    """Mirror left-right with probability ``prob``.

    Args:
        prob: Probability of flipping. Defaults to 0.5.
    """

    #: Draws random numbers: the engine's caches stop at this transform.
    random = True

    def __init__(self, prob: float = 0.5) -> None:
        self.prob = _check_prob(prob, "RandomHorizontalFlip")

    def __call__(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            return results
        return _apply(results, lambda a: a[:, ::-1], lambda m: m[:, ::-1])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prob={self.prob})"


@TRANSFORMS.register_module()
class RandomVerticalFlip:
    """Mirror top-bottom with probability ``prob``.

    Args:
        prob: Probability of flipping. Defaults to 0.5.
    """

    #: Draws random numbers: the engine's caches stop at this transform.
    random = True

    def __init__(self, prob: float = 0.5) -> None:
        self.prob = _check_prob(prob, "RandomVerticalFlip")

    def __call__(self, results: dict) -> dict:
        if np.random.rand() >= self.prob:
            return results
        return _apply(results, lambda a: a[::-1], lambda m: m[::-1])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prob={self.prob})"


@TRANSFORMS.register_module()
class RandomRotation:
    """Rotate about the centre by a uniform random angle, keeping the size.

    Corners uncovered by the rotation are filled with ``fill`` (image) and 0 (mask).

    Args:
        degrees: Angle range in degrees: ``d`` means (-d, d), or give (min, max).
        fill: Grey value of uncovered image pixels. Defaults to 0.
    """

    #: Draws random numbers: the engine's caches stop at this transform.
    random = True

    def __init__(self, degrees: float | Sequence[float], fill: int = 0) -> None:
        if isinstance(degrees, (int, float)):
            if degrees < 0:
                raise ConfigError(f"RandomRotation degrees must be >= 0, got {degrees}")
            self.degrees = (-float(degrees), float(degrees))
        elif isinstance(degrees, Sequence) and len(degrees) == 2 and degrees[0] <= degrees[1]:
            self.degrees = (float(degrees[0]), float(degrees[1]))
        else:
            raise ConfigError(
                f"RandomRotation degrees must be a number or (min, max), got {degrees!r}"
            )
        self.fill = int(fill)

    def __call__(self, results: dict) -> dict:
        angle = float(np.random.uniform(*self.degrees))
        if angle == 0.0:
            return results

        def image_fn(img: np.ndarray) -> np.ndarray:
            rotated = Image.fromarray(img).rotate(
                angle, resample=Image.BILINEAR, fillcolor=(self.fill,) * 3
            )
            return np.array(rotated)

        def mask_fn(mask: np.ndarray) -> np.ndarray:
            return np.array(Image.fromarray(mask).rotate(angle, resample=Image.NEAREST))

        return _apply(results, image_fn, mask_fn)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(degrees={self.degrees}, fill={self.fill})"


@TRANSFORMS.register_module()
class RandomShift:
    """Translate by a uniform random whole-pixel offset, keeping the size.

    The image is padded by ``max_shift`` on every side with ``fill`` and a window of the
    original size is cut at a random offset: the small-image augmentation of the CIFAR
    recipes ("random crop with padding"), which moves content without mirroring it, so it
    suits data whose orientation carries the label (digits, text, aligned parts).

    Args:
        max_shift: Largest offset in pixels along each axis; an int, or (dy, dx).
        fill: Grey value of uncovered image pixels. Defaults to 0.
    """

    #: Draws random numbers: the engine's caches stop at this transform.
    random = True

    def __init__(self, max_shift: int | Sequence[int], fill: int = 0) -> None:
        shift = (max_shift, max_shift) if isinstance(max_shift, int) else tuple(max_shift)
        if len(shift) != 2 or min(shift) < 0:
            raise ConfigError(
                f"RandomShift max_shift must be an int >= 0 or (dy, dx), got {max_shift!r}"
            )
        self.max_shift = (int(shift[0]), int(shift[1]))
        self.fill = int(fill)

    def __call__(self, results: dict) -> dict:
        sy, sx = self.max_shift
        dy = int(np.random.randint(-sy, sy + 1)) if sy else 0
        dx = int(np.random.randint(-sx, sx + 1)) if sx else 0
        if dy == 0 and dx == 0:
            return results

        def shift(arr: np.ndarray, fill: int) -> np.ndarray:
            h, w = arr.shape[:2]
            out = np.full_like(arr, fill)
            out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = arr[
                max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
            ]
            return out

        return _apply(results, lambda a: shift(a, self.fill), lambda m: shift(m, 0))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_shift={self.max_shift}, fill={self.fill})"
