"""One-class bottleneck embedding (Reverse Distillation, Deng & Li 2022, Sec. 3.2)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from adtool.errors import ConfigError
from adtool.models.components.residual_block import (
    ResidualBlock,
    fuse_levels,
    init_resnet_weights,
    multiscale_fusion,
)
from adtool.registry import MODELS


@MODELS.register_module()
class OCBENeck(nn.Module):
    """Fuse the encoder's levels into one compact embedding (multi-scale fusion + OCE).

    Multi-scale feature fusion: every level but the last is brought to the last level's
    resolution by stride-2 3x3 convolutions (with batch norm and ReLU), its channels
    growing geometrically to the last level's (WideResNet-50: 256 -> 512 -> 1024 and
    512 -> 1024, as in the paper's code); the levels are concatenated. One-class
    embedding: a stage of ``num_blocks`` residual blocks, the first with stride 2,
    like ResNet's layer4, gives the compact code the decoder starts from.

    Channel widths come from the encoder (``in_channels``, ``reductions``); the model
    fills them from its backbone, so a config need not state them.

    Args:
        in_channels: Channels of each encoder level, fine to coarse. Defaults to None
            (filled by the model).
        reductions: Stride of each encoder level. Defaults to None (filled by the model).
        out_channels: Channels of the embedding. Defaults to twice the last level's
            (WideResNet-50: 2048, as the paper).
        num_blocks: Residual blocks of the embedding stage. Defaults to 3 (paper).
        block: ``'bottleneck'`` or ``'basic'``. Defaults to ``'bottleneck'`` (paper, for
            WideResNet-50; its ResNet-18 variant uses ``'basic'``).
        width_ratio: Bottleneck width as a fraction of ``out_channels``. Defaults to 0.5
            (WideResNet-50's 1024 of 2048).
    """

    def __init__(
        self,
        in_channels: Sequence[int] | None = None,
        reductions: Sequence[int] | None = None,
        out_channels: int | None = None,
        num_blocks: int = 3,
        block: str = "bottleneck",
        width_ratio: float = 0.5,
    ) -> None:
        super().__init__()
        if not in_channels or not reductions:
            raise ConfigError(
                "OCBENeck needs in_channels and reductions; build it inside a model, which "
                "fills them from the backbone, or set model.neck.in_channels/reductions"
            )
        if len(in_channels) != len(reductions) or len(in_channels) < 2:
            raise ConfigError(
                f"OCBENeck: in_channels {list(in_channels)} and reductions {list(reductions)} "
                "must name the same >= 2 levels"
            )
        self.in_channels = list(in_channels)
        self.reductions = list(reductions)
        last_c, last_r = self.in_channels[-1], self.reductions[-1]
        self.fuse, fused = multiscale_fusion(self.in_channels, self.reductions, "OCBENeck")
        self.out_channels = out_channels or 2 * last_c
        self.out_reduction = 2 * last_r
        mid = max(1, round(self.out_channels * width_ratio))
        blocks = [ResidualBlock(fused, self.out_channels, mid, "down", 2, block)]
        blocks += [
            ResidualBlock(self.out_channels, self.out_channels, mid, None, 1, block)
            for _ in range(num_blocks - 1)
        ]
        self.embed = nn.Sequential(*blocks)
        init_resnet_weights(self)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """(B, C_i, H_i, W_i) per level -> (B, out_channels, H_last / 2, W_last / 2)."""
        if len(features) != len(self.in_channels):
            raise ValueError(f"expected {len(self.in_channels)} levels, got {len(features)}")
        return self.embed(fuse_levels(self.fuse, features))
