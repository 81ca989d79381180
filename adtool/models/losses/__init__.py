"""Losses shared by two or more methods (a method's own loss lives in its folder)."""

from .cosine_feature_loss import CosineFeatureLoss

__all__ = ["CosineFeatureLoss"]
