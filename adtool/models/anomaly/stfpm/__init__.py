"""STFPM: model (its head and loss are shared with Reverse Distillation)."""

from .model import STFPM

__all__ = ["STFPM"]
