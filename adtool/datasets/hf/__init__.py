"""Datasets of the HuggingFace tasks: classification, detection, segmentation, super-res."""

from .coco import CocoDetection
from .det_seg_transforms import (
    LoadSegMask,
    PackDetInputs,
    PackSegInputs,
    RandomFlipWithTargets,
    ResizeWithTargets,
)
from .image_folder import ImageFolderCls
from .real_data import (
    DIGIT_CLASSES,
    make_digits_classification_dataset,
    make_digits_detection_dataset,
    make_digits_segmentation_dataset,
    make_natural_image_folder,
    make_photo_sr_dataset,
)
from .seg_masks import SegMasks
from .sr_pairs import SRPairs
from .synthetic import CLS_CLASSES, make_classification_dataset, make_sr_dataset
from .synthetic_det_seg import make_coco_detection_dataset, make_segmentation_dataset
from .transforms import (
    LoadSRPair,
    PackClsInputs,
    PackSRInputs,
    RandomSRCrop,
    RandomSRFlip,
    bicubic_downscale,
)

__all__ = [
    "CLS_CLASSES",
    "CocoDetection",
    "DIGIT_CLASSES",
    "ImageFolderCls",
    "LoadSRPair",
    "LoadSegMask",
    "PackClsInputs",
    "PackDetInputs",
    "PackSRInputs",
    "PackSegInputs",
    "RandomFlipWithTargets",
    "RandomSRCrop",
    "RandomSRFlip",
    "ResizeWithTargets",
    "SRPairs",
    "SegMasks",
    "bicubic_downscale",
    "make_classification_dataset",
    "make_coco_detection_dataset",
    "make_digits_classification_dataset",
    "make_digits_detection_dataset",
    "make_digits_segmentation_dataset",
    "make_natural_image_folder",
    "make_photo_sr_dataset",
    "make_segmentation_dataset",
    "make_sr_dataset",
]
