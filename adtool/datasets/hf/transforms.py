"""Transforms of classification and super-resolution samples.

Classification reuses ``LoadAnomalyImage`` (any file mode -> RGB uint8), ``Resize`` and the
random flips, then :class:`PackClsInputs`. Super-resolution reads the pair with
:class:`LoadSRPair` (``img`` = the low-resolution input, ``gt_img`` = the high-resolution
target, both uint8 H x W x 3), crops and flips both in step, then :class:`PackSRInputs`.
Results without targets (inference on a bare image) pass through the packers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from mmengine.structures import BaseDataElement
from PIL import Image

from adtool.datasets.transforms.loading import _open, image_to_rgb
from adtool.errors import ConfigError, DataError
from adtool.registry import TRANSFORMS

CLS_META_KEYS = ("img_path", "ori_shape", "img_shape", "class_name")
SR_META_KEYS = ("img_path", "lr_path", "ori_shape", "img_shape", "gt_shape", "scale")


def _chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def bicubic_downscale(img: np.ndarray, scale: int) -> np.ndarray:
    """``img`` (H x W x 3 uint8, sides divisible by ``scale``) shrunk by ``scale``.

    PIL's bicubic widens its kernel when shrinking (antialiasing), like MATLAB's
    ``imresize`` that made the DIV2K / Set5 low-resolution images.
    """
    h, w = img.shape[:2]
    return np.asarray(Image.fromarray(img).resize((w // scale, h // scale), Image.BICUBIC))


@TRANSFORMS.register_module()
class PackClsInputs:
    """Pack ``img`` as uint8 (3, H, W) and a ``BaseDataElement`` with ``gt_label`` (int).

    Args:
        meta_keys: Result keys copied into the metainfo when present. Defaults to
            ``('img_path', 'ori_shape', 'img_shape', 'class_name')``.
    """

    def __init__(self, meta_keys: Sequence[str] = CLS_META_KEYS) -> None:
        self.meta_keys = tuple(meta_keys)

    def __call__(self, results: dict) -> dict:
        sample = BaseDataElement(metainfo={k: results[k] for k in self.meta_keys if k in results})
        if results.get("gt_label") is not None:
            sample.gt_label = int(results["gt_label"])
        return {"inputs": _chw(results["img"]), "data_samples": sample}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(meta_keys={self.meta_keys})"


@TRANSFORMS.register_module()
class LoadSRPair:
    """Read the HR image (``img_path``) and its LR partner (``lr_path``, or made here).

    Sets ``gt_img`` (HR, cropped at the bottom/right to a multiple of ``scale``), ``img``
    (LR), ``img_shape`` (LR), ``gt_shape`` (HR) and ``ori_shape`` (HR file). Without
    ``lr_path`` the LR image is the bicubic downscale of the HR image.

    Args:
        scale: Upscaling factor. Defaults to 2.
    """

    def __init__(self, scale: int = 2) -> None:
        if int(scale) < 1:
            raise ConfigError(f"LoadSRPair scale must be >= 1, got {scale}")
        self.scale = int(scale)

    def __call__(self, results: dict) -> dict:
        scale = int(results.get("scale", self.scale))
        with _open(results["img_path"], "HR image") as image:
            hr = image_to_rgb(image)
        results["ori_shape"] = hr.shape[:2]
        h, w = (hr.shape[0] // scale) * scale, (hr.shape[1] // scale) * scale
        if h == 0 or w == 0:
            raise DataError(f"HR image {results['img_path']} is smaller than the scale {scale}")
        hr = hr[:h, :w]
        if results.get("lr_path"):
            with _open(results["lr_path"], "LR image") as image:
                lr = image_to_rgb(image)
            if lr.shape[:2] != (h // scale, w // scale):
                raise DataError(
                    f"LR image {results['lr_path']} is {lr.shape[1]}x{lr.shape[0]}, expected "
                    f"{w // scale}x{h // scale} (HR / {scale}); fix it or delete the LR folder "
                    "to make LR images by bicubic downscaling"
                )
        else:
            lr = bicubic_downscale(hr, scale)
        results.update(img=lr, gt_img=hr, scale=scale)
        results["img_shape"] = lr.shape[:2]
        results["gt_shape"] = hr.shape[:2]
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scale={self.scale})"


@TRANSFORMS.register_module()
class RandomSRCrop:
    """Crop an aligned random patch: ``lr_size`` from the LR image, ``lr_size * scale``
    from the HR image at the matching place.

    Args:
        lr_size: Side of the LR patch (square). Swin2SR trains on 64 (x2: 128 HR).
    """

    def __init__(self, lr_size: int) -> None:
        if int(lr_size) < 1:
            raise ConfigError(f"RandomSRCrop lr_size must be >= 1, got {lr_size}")
        self.lr_size = int(lr_size)

    def __call__(self, results: dict) -> dict:
        lr, hr, scale = results["img"], results["gt_img"], int(results["scale"])
        p = self.lr_size
        if lr.shape[0] < p or lr.shape[1] < p:
            raise DataError(
                f"LR image of {results.get('img_path')} is {lr.shape[1]}x{lr.shape[0]}, smaller "
                f"than RandomSRCrop lr_size={p}; lower lr_size"
            )
        top = np.random.randint(0, lr.shape[0] - p + 1)
        left = np.random.randint(0, lr.shape[1] - p + 1)
        results["img"] = np.ascontiguousarray(lr[top : top + p, left : left + p])
        hs = p * scale
        results["gt_img"] = np.ascontiguousarray(
            hr[top * scale : top * scale + hs, left * scale : left * scale + hs]
        )
        results["img_shape"] = (p, p)
        results["gt_shape"] = (hs, hs)
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr_size={self.lr_size})"


@TRANSFORMS.register_module()
class RandomSRFlip:
    """Flip left-right, top-bottom and transpose the LR/HR pair together, each with
    probability ``prob`` (the 8 dihedral augmentations of SR training).

    Args:
        prob: Probability of each of the three operations. Defaults to 0.5.
    """

    def __init__(self, prob: float = 0.5) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ConfigError(f"RandomSRFlip prob must be in [0, 1], got {prob}")
        self.prob = float(prob)

    def __call__(self, results: dict) -> dict:
        ops = np.random.rand(3) < self.prob
        for key in ("img", "gt_img"):
            arr = results[key]
            if ops[0]:
                arr = arr[:, ::-1]
            if ops[1]:
                arr = arr[::-1]
            if ops[2]:
                arr = arr.transpose(1, 0, 2)
            results[key] = np.ascontiguousarray(arr)
        results["img_shape"] = results["img"].shape[:2]
        results["gt_shape"] = results["gt_img"].shape[:2]
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prob={self.prob})"


@TRANSFORMS.register_module()
class PackSRInputs:
    """Pack the LR ``img`` as uint8 (3, h, w) and a ``BaseDataElement`` with ``gt_img``
    (HR float (3, H, W) in [0, 1]) when the results carry it.

    Args:
        meta_keys: Result keys copied into the metainfo when present. Defaults to
            ``('img_path', 'lr_path', 'ori_shape', 'img_shape', 'gt_shape', 'scale')``.
    """

    def __init__(self, meta_keys: Sequence[str] = SR_META_KEYS) -> None:
        self.meta_keys = tuple(meta_keys)

    def __call__(self, results: dict) -> dict:
        sample = BaseDataElement(metainfo={k: results[k] for k in self.meta_keys if k in results})
        if results.get("gt_img") is not None:
            sample.gt_img = _chw(results["gt_img"]).float() / 255.0
        return {"inputs": _chw(results["img"]), "data_samples": sample}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(meta_keys={self.meta_keys})"
