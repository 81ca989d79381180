"""Anomaly-detection datasets and their transforms; importing this registers them all."""

from . import hf  # noqa: F401  (registers the HuggingFace task datasets)
from .base import IMG_EXTENSIONS, BaseAnomalyDataset, is_image_file, list_images
from .btad import BTAD
from .folder import Folder
from .mvtec import MVTecAD
from .sample import SampleDataset
from .synthetic import SAMPLE_CATEGORIES, SAMPLE_DEFECTS, make_sample_dataset, sample_image
from .transforms import (
    CenterCrop,
    LoadAnomalyImage,
    LoadAnomalyMask,
    PackAnomalyInputs,
    RandomHorizontalFlip,
    RandomRotation,
    RandomVerticalFlip,
    Resize,
)
from .visa import VisA

__all__ = [
    "BTAD",
    "IMG_EXTENSIONS",
    "SAMPLE_CATEGORIES",
    "SAMPLE_DEFECTS",
    "BaseAnomalyDataset",
    "CenterCrop",
    "Folder",
    "LoadAnomalyImage",
    "LoadAnomalyMask",
    "MVTecAD",
    "PackAnomalyInputs",
    "RandomHorizontalFlip",
    "RandomRotation",
    "RandomVerticalFlip",
    "Resize",
    "SampleDataset",
    "VisA",
    "is_image_file",
    "list_images",
    "make_sample_dataset",
    "sample_image",
]
