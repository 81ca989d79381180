"""HuggingFace transformers vision models as mmengine BaseModels (the ``hf`` extra).

Importing this package needs no transformers; building a wrapper does.
"""

from .base import HFDataPreprocessor, HFTaskModel, skip_pretrained_weights
from .dfine import DFineDetector
from .eomt import EomtSegmenter
from .swin2sr import Swin2SRSuperResolution
from .vit import ViTClassifier

__all__ = [
    "DFineDetector",
    "EomtSegmenter",
    "HFDataPreprocessor",
    "HFTaskModel",
    "Swin2SRSuperResolution",
    "ViTClassifier",
    "skip_pretrained_weights",
]
