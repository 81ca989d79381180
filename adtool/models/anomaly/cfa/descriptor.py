"""CFA's patch descriptor: pooled multi-level features, CoordConv, 1x1 projection."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from adtool.errors import ConfigError
from adtool.registry import MODELS


@MODELS.register_module()
class CoordConv2d(nn.Module):
    """A convolution over the input plus two coordinate channels (CoordConv).

    "An intriguing failing of convolutional neural networks and the CoordConv solution",
    Liu et al., NeurIPS 2018, https://arxiv.org/abs/1807.03247. The row and then the
    column index, each mapped linearly to [-1, 1], are appended to the channels, so a
    1x1 convolution can tell positions apart (CFA's official code, ``with_r=False``).

    Args:
        in_channels: Channels of the input (without the two coordinates).
        out_channels: Channels of the output.
        kernel_size: Kernel of the convolution. Defaults to 1.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels + 2, out_channels, kernel_size)

    @staticmethod
    def coordinates(x: torch.Tensor) -> torch.Tensor:
        """(B, 2, H, W) row and column coordinates in [-1, 1] for a (B, C, H, W) input."""
        b, _, h, w = x.shape
        rows = torch.linspace(-1, 1, h, dtype=x.dtype, device=x.device)
        cols = torch.linspace(-1, 1, w, dtype=x.dtype, device=x.device)
        grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"))
        return grid.unsqueeze(0).expand(b, -1, -1, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([x, self.coordinates(x)], dim=1))


@MODELS.register_module()
class PatchDescriptor(nn.Module):
    """CFA's target-oriented patch features ``phi(p)``.

    Each backbone level is averaged over a 3x3 neighbourhood (stride 1, zero padding
    counted, as the official code), levels after the first are resized bilinearly to the
    first level's grid, all are concatenated along channels, and a 1x1
    :class:`CoordConv2d` projects them to ``sum(in_channels) // gamma_d`` channels. Only
    the projection is trained.

    Args:
        in_channels: Channels of each backbone level; filled from the backbone when None.
            Defaults to None.
        gamma_d: Channel compression of the projection. Defaults to 1 (the paper).
        pool_size: Side of the averaging window. Defaults to 3 (the paper).
    """

    def __init__(
        self,
        in_channels: Sequence[int] | None = None,
        gamma_d: int = 1,
        pool_size: int = 3,
    ) -> None:
        super().__init__()
        if not in_channels:
            raise ConfigError(
                "PatchDescriptor needs in_channels (one per backbone level); use a backbone "
                "that reports out_channels or set model.descriptor.in_channels"
            )
        total = sum(int(c) for c in in_channels)
        if gamma_d < 1 or total // gamma_d < 1:
            raise ConfigError(
                f"PatchDescriptor gamma_d={gamma_d} must be in [1, {total}] for {total} input "
                "channels; fix model.descriptor.gamma_d"
            )
        if pool_size < 1 or pool_size % 2 == 0:
            raise ConfigError(
                f"PatchDescriptor pool_size={pool_size} must be odd and positive (the grid "
                "keeps its size); fix model.descriptor.pool_size"
            )
        self.in_channels = [int(c) for c in in_channels]
        self.pool_size = pool_size
        self.out_channels = total // gamma_d
        self.projection = CoordConv2d(total, self.out_channels, kernel_size=1)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """Backbone levels [(B, C_l, H_l, W_l)] -> (B, C_out, H_0, W_0) descriptors."""
        k = self.pool_size
        pooled = [F.avg_pool2d(f, k, stride=1, padding=k // 2) for f in features]
        size = pooled[0].shape[-2:]
        resized = [pooled[0]] + [
            F.interpolate(p, size=size, mode="bilinear", align_corners=False) for p in pooled[1:]
        ]
        return self.projection(torch.cat(resized, dim=1))
