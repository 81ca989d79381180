"""SuperSimpleNet: feature-level synthetic anomalies, a segmentation and a classification head."""

from .model import SuperSimpleNet
from .parts import FeatureAnomalyGenerator, SegDetHead, UpscaleConcatNeck, truncated_l1_loss

__all__ = [
    "FeatureAnomalyGenerator",
    "SegDetHead",
    "SuperSimpleNet",
    "UpscaleConcatNeck",
    "truncated_l1_loss",
]
