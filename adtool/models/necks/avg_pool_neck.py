"""Average pooling of one backbone level to a coarse grid (DFM)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from adtool.errors import ConfigError
from adtool.registry import MODELS


@MODELS.register_module()
class AvgPoolNeck(nn.Module):
    """Average-pool a single feature level with a ``kernel_size`` window (stride = window).

    DFM describes an image by its pooled feature map flattened to one vector; pooling
    shrinks that vector (ResNet-50 layer3 at 224 px: 1024 x 14 x 14 -> 1024 x 3 x 3) so
    that PCA over a few hundred images is well posed.

    Args:
        kernel_size: Pooling window and stride; 1 disables pooling. Defaults to 4
            (anomalib's DFM).
    """

    def __init__(self, kernel_size: int = 4) -> None:
        super().__init__()
        if kernel_size < 1:
            raise ConfigError(f"AvgPoolNeck kernel_size must be >= 1, got {kernel_size}")
        self.kernel_size = kernel_size

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """[(B, C, H, W)] -> (B, C, H // k, W // k)."""
        if len(features) != 1:
            raise ConfigError(
                f"AvgPoolNeck takes one feature level, got {len(features)}; set "
                "model.backbone.out_indices to a single level, e.g. (3,)"
            )
        feat = features[0]
        if self.kernel_size == 1:
            return feat
        if min(feat.shape[-2:]) < self.kernel_size:
            raise ConfigError(
                f"AvgPoolNeck kernel_size={self.kernel_size} is larger than the "
                f"{tuple(feat.shape[-2:])} feature map; use a smaller model.neck.kernel_size "
                "or larger images"
            )
        return F.avg_pool2d(feat, self.kernel_size)
