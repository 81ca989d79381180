"""EfficientAD: model, its PDN teacher/student and autoencoder, teacher distillation."""

from .model import EfficientAD
from .networks import PDNBackbone

__all__ = ["EfficientAD", "PDNBackbone"]
