"""SuperSimpleNet: feature-level synthetic anomalies, a segmentation and a classification head."""

from .model import SuperSimpleNet
from .parts import SegDetHead, UpscaleConcatNeck

__all__ = ["SegDetHead", "SuperSimpleNet", "UpscaleConcatNeck"]
