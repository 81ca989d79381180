"""Packing: the pipeline's dict -> ``{'inputs': tensor, 'data_samples': AnomalyDataSample}``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from adtool.registry import TRANSFORMS
from adtool.structures import AnomalyDataSample

DEFAULT_META_KEYS = ("img_path", "defect_type", "category", "ori_shape", "img_shape")


@TRANSFORMS.register_module()
class PackAnomalyInputs:
    """Pack the image as a uint8 (3, H, W) tensor and the labels as an AnomalyDataSample.

    Normalisation is left to the model's data preprocessor. ``gt_label`` is always set
    (0 when unknown); ``gt_mask`` only when the pipeline produced one.

    Args:
        meta_keys: Result keys copied into the sample's metainfo when present. Defaults to
            ``('img_path', 'defect_type', 'category', 'ori_shape', 'img_shape')``.
        image_keys: Further H x W x 3 images of the results packed like ``img`` into a data
            field of that name (DRAEM's anomaly-free target ``img_clean``). Defaults to ().
    """

    #: Same output for the same input: the engine may cache it (adtool.engine.feature_cache).
    random = False

    def __init__(
        self, meta_keys: Sequence[str] = DEFAULT_META_KEYS, image_keys: Sequence[str] = ()
    ) -> None:
        self.meta_keys = tuple(meta_keys)
        self.image_keys = tuple(image_keys)

    def __call__(self, results: dict) -> dict:
        img = results["img"]
        inputs = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        sample = AnomalyDataSample(metainfo={k: results[k] for k in self.meta_keys if k in results})
        sample.gt_label = int(results.get("gt_label", 0))
        if results.get("gt_mask") is not None:
            sample.gt_mask = torch.from_numpy(np.array(results["gt_mask"], dtype=np.uint8))
        for key in self.image_keys:
            if key not in results:
                raise KeyError(
                    f"PackAnomalyInputs: image_keys names {key!r} but the pipeline made no such "
                    "result; put the transform that writes it (e.g. TextureAnomalyBlend) before"
                )
            image = np.ascontiguousarray(results[key].transpose(2, 0, 1))
            sample.set_field(torch.from_numpy(image), key)
        return {"inputs": inputs, "data_samples": sample}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(meta_keys={self.meta_keys}, image_keys={self.image_keys})"
