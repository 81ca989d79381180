"""Pipeline transforms (registered in ``adtool.registry.TRANSFORMS``)."""

from .anomaly_synthesis import PerlinAnomalyMask, TextureAnomalyBlend
from .formatting import PackAnomalyInputs
from .loading import LoadAnomalyImage, LoadAnomalyMask, image_to_rgb, mask_to_binary
from .processing import (
    CenterCrop,
    RandomHorizontalFlip,
    RandomRotation,
    RandomShift,
    RandomVerticalFlip,
    Resize,
)

__all__ = [
    "CenterCrop",
    "LoadAnomalyImage",
    "LoadAnomalyMask",
    "PackAnomalyInputs",
    "PerlinAnomalyMask",
    "TextureAnomalyBlend",
    "RandomHorizontalFlip",
    "RandomRotation",
    "RandomShift",
    "RandomVerticalFlip",
    "Resize",
    "image_to_rgb",
    "mask_to_binary",
]
