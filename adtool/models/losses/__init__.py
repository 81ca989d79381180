"""Losses shared by two or more methods (a method's own loss lives in its folder)."""

from .cosine_feature_loss import CosineFeatureLoss
from .focal_loss import FocalLoss
from .ssim_loss import SSIMLoss, ssim_distance_map

__all__ = ["CosineFeatureLoss", "FocalLoss", "SSIMLoss", "ssim_distance_map"]
