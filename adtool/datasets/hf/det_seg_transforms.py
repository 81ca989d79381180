"""Transforms of detection and segmentation samples that keep boxes and masks in step.

Pipeline results keys (after ``LoadAnomalyImage``, which reads any image mode as RGB):
``img`` (uint8 H x W x 3), ``img_shape``, ``ori_shape``, and the targets the dataset put
there: detection ``gt_bboxes`` (float32 (N, 4) xyxy pixels) and ``gt_labels`` (int64 (N,));
segmentation ``seg_map_path`` (read by :class:`LoadSegMask` into ``gt_sem_seg``, uint8
H x W class indices, 255 = ignore). A geometric transform changes the image, the boxes and
the mask together. Results without targets (inference on a bare image) pass through.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from mmengine.structures import BaseDataElement, InstanceData
from PIL import Image

from adtool.errors import ConfigError, DataError
from adtool.registry import TRANSFORMS

DET_META_KEYS = ("img_path", "img_id", "ori_shape", "img_shape", "scale_factor", "flip")
SEG_META_KEYS = ("img_path", "seg_map_path", "ori_shape", "img_shape", "scale_factor", "flip")


def _size_hw(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ConfigError(f"size must be an int or (height, width) of positive ints, got {size}")
    return size


@TRANSFORMS.register_module()
class LoadSegMask:
    """Read ``results['seg_map_path']`` (a single-channel PNG of class indices) into
    ``gt_sem_seg`` (uint8 H x W). Palette ('P') images give their indices.

    Skipped when the results have no ``seg_map_path`` (inference on bare images).

    Args:
        reduce_zero_label: Masks use 0 for "unlabelled" and 1..K for the classes (ADE20K):
            0 becomes 255 (ignored) and every other value drops by one. Defaults to False.
    """

    def __init__(self, reduce_zero_label: bool = False) -> None:
        self.reduce_zero_label = bool(reduce_zero_label)

    def __call__(self, results: dict) -> dict:
        path = results.get("seg_map_path")
        if path is None:
            return results
        try:
            with Image.open(path) as image:
                mode = image.mode
                mask = np.array(image)
        except OSError as e:
            raise DataError(f"label mask {path} could not be read ({e}); check the file") from None
        if mode not in ("L", "P", "I", "I;16"):
            raise DataError(
                f"label mask {path} has mode {mode}; masks must be single-channel PNGs of "
                "class indices (0..K-1, 255 = ignore)"
            )
        if mask.max(initial=0) > 255:
            raise DataError(f"label mask {path} has class index {mask.max()} > 255")
        shape = tuple(results["img_shape"])
        if mask.shape != shape:
            raise DataError(
                f"label mask {path} is {mask.shape[1]}x{mask.shape[0]} but its image is "
                f"{shape[1]}x{shape[0]}; a mask must have its image's size"
            )
        mask = mask.astype(np.uint8)
        if self.reduce_zero_label:
            mask = np.where((mask == 0) | (mask == 255), 255, mask - 1).astype(np.uint8)
        results["gt_sem_seg"] = mask
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reduce_zero_label={self.reduce_zero_label})"


@TRANSFORMS.register_module()
class ResizeWithTargets:
    """Resize the image (bilinear) to ``size``; scale ``gt_bboxes`` and resize
    ``gt_sem_seg`` (nearest neighbour) with it. The aspect ratio is not kept, as in the
    D-FINE / RT-DETR and EoMT image processors' square inputs.

    Args:
        size: Output side (square) or ``(height, width)``.
    """

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _size_hw(size)

    def __call__(self, results: dict) -> dict:
        img = results["img"]
        h, w = img.shape[:2]
        out_h, out_w = self.size
        if (h, w) != (out_h, out_w):
            results["img"] = np.asarray(Image.fromarray(img).resize((out_w, out_h), Image.BILINEAR))
        sx, sy = out_w / w, out_h / h
        if results.get("gt_bboxes") is not None:
            scale = np.array([sx, sy, sx, sy], np.float32)
            results["gt_bboxes"] = np.asarray(results["gt_bboxes"], np.float32) * scale
        if results.get("gt_sem_seg") is not None and results["gt_sem_seg"].shape != self.size:
            mask = Image.fromarray(results["gt_sem_seg"])
            results["gt_sem_seg"] = np.asarray(mask.resize((out_w, out_h), Image.NEAREST))
        results["img_shape"] = (out_h, out_w)
        results["scale_factor"] = (sx, sy)
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


@TRANSFORMS.register_module()
class RandomFlipWithTargets:
    """Flip the image, ``gt_bboxes`` and ``gt_sem_seg`` together with probability ``prob``.

    Args:
        prob: Flip probability. Defaults to 0.5.
        direction: ``'horizontal'`` or ``'vertical'``. Defaults to ``'horizontal'``.
    """

    def __init__(self, prob: float = 0.5, direction: str = "horizontal") -> None:
        if not 0.0 <= prob <= 1.0:
            raise ConfigError(f"RandomFlipWithTargets prob must be in [0, 1], got {prob}")
        if direction not in ("horizontal", "vertical"):
            raise ConfigError(
                f"RandomFlipWithTargets direction must be 'horizontal' or 'vertical', "
                f"got {direction!r}"
            )
        self.prob = float(prob)
        self.direction = direction

    def __call__(self, results: dict) -> dict:
        flip = bool(np.random.rand() < self.prob)
        results["flip"] = flip
        if not flip:
            return results
        axis = 1 if self.direction == "horizontal" else 0
        h, w = results["img"].shape[:2]
        results["img"] = np.ascontiguousarray(np.flip(results["img"], axis))
        if results.get("gt_sem_seg") is not None:
            results["gt_sem_seg"] = np.ascontiguousarray(np.flip(results["gt_sem_seg"], axis))
        if results.get("gt_bboxes") is not None:
            boxes = np.asarray(results["gt_bboxes"], np.float32).copy()
            if axis == 1:
                boxes[:, [0, 2]] = w - boxes[:, [2, 0]]
            else:
                boxes[:, [1, 3]] = h - boxes[:, [3, 1]]
            results["gt_bboxes"] = boxes
        return results

    def __repr__(self) -> str:
        return f"{type(self).__name__}(prob={self.prob}, direction={self.direction!r})"


def _pack_image(results: dict) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(results["img"].transpose(2, 0, 1)))


def _metainfo(results: dict, keys: Sequence[str]) -> dict:
    return {k: results[k] for k in keys if k in results}


@TRANSFORMS.register_module()
class PackDetInputs:
    """Pack a detection sample: ``inputs`` uint8 (3, H, W) and a ``BaseDataElement`` with
    ``gt_instances`` (``bboxes`` float (N, 4) xyxy input pixels, ``labels`` long (N,)) when
    the results carry boxes.

    Args:
        meta_keys: Result keys copied into the sample's metainfo when present. Defaults to
            ``('img_path', 'img_id', 'ori_shape', 'img_shape', 'scale_factor', 'flip')``.
    """

    def __init__(self, meta_keys: Sequence[str] = DET_META_KEYS) -> None:
        self.meta_keys = tuple(meta_keys)

    def __call__(self, results: dict) -> dict:
        sample = BaseDataElement(metainfo=_metainfo(results, self.meta_keys))
        if results.get("gt_bboxes") is not None:
            boxes = torch.as_tensor(np.asarray(results["gt_bboxes"], np.float32)).reshape(-1, 4)
            labels = torch.as_tensor(np.asarray(results["gt_labels"], np.int64)).reshape(-1)
            sample.gt_instances = InstanceData(bboxes=boxes, labels=labels)
        return {"inputs": _pack_image(results), "data_samples": sample}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(meta_keys={self.meta_keys})"


@TRANSFORMS.register_module()
class PackSegInputs:
    """Pack a segmentation sample: ``inputs`` uint8 (3, H, W) and a ``BaseDataElement``
    with ``gt_sem_seg`` (long (H, W), 255 = ignore) when the results carry a mask.

    Args:
        meta_keys: Result keys copied into the sample's metainfo when present. Defaults to
            ``('img_path', 'seg_map_path', 'ori_shape', 'img_shape', 'scale_factor',
            'flip')``.
    """

    def __init__(self, meta_keys: Sequence[str] = SEG_META_KEYS) -> None:
        self.meta_keys = tuple(meta_keys)

    def __call__(self, results: dict) -> dict:
        sample = BaseDataElement(metainfo=_metainfo(results, self.meta_keys))
        if results.get("gt_sem_seg") is not None:
            sample.gt_sem_seg = torch.from_numpy(np.asarray(results["gt_sem_seg"], np.int64))
        return {"inputs": _pack_image(results), "data_samples": sample}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(meta_keys={self.meta_keys})"
