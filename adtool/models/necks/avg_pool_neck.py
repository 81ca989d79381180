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
    shrinks that vector (ResNet-50 layer3 at 256 px: 1024 x 16 x 16 -> 1024 x 4 x 4) so
    that PCA over a few hundred images is well posed.

    A map the window does not divide is refused: pooling would silently drop its last
    rows and columns (14 x 14 by 4: 27% of the image) and shift the grid off the image.

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
        height, width = feat.shape[-2:]
        if height % self.kernel_size or width % self.kernel_size:
            raise ConfigError(
                f"AvgPoolNeck kernel_size={self.kernel_size} does not divide the "
                f"{height} x {width} feature map (its last {height % self.kernel_size} rows and "
                f"{width % self.kernel_size} columns would be dropped); use an image size "
                f"whose feature map is a multiple of {self.kernel_size} (e.g. 256 px for "
                "stride 16) or another model.neck.kernel_size"
            )
        return F.avg_pool2d(feat, self.kernel_size)
