"""Reverse Distillation: model and the parts only it uses."""

from .model import ReverseDistillation
from .ocbe_neck import OCBENeck
from .reverse_decoder import ReverseDecoder

__all__ = ["OCBENeck", "ReverseDecoder", "ReverseDistillation"]
