"""Reverse Distillation: model and the parts only it uses (its decoder is in heads/)."""

from .model import ReverseDistillation
from .ocbe_neck import OCBENeck

__all__ = ["OCBENeck", "ReverseDistillation"]
