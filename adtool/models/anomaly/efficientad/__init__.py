"""EfficientAD: model, its PDN teacher/student and autoencoder, teacher distillation."""

from .model import EfficientAD, hard_feature_loss, quantile_normalize
from .networks import AutoEncoder, PDNBackbone

__all__ = ["AutoEncoder", "EfficientAD", "PDNBackbone", "hard_feature_loss", "quantile_normalize"]
