"""UniNet's attention bottleneck (Wei et al., CVPR 2025, Sec. 3.1)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from adtool.errors import ConfigError
from adtool.models.components.residual_block import (
    fuse_levels,
    init_resnet_weights,
    multiscale_fusion,
)
from adtool.registry import MODELS


def _conv_bn(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1
) -> list[nn.Module]:
    return [
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            bias=False,
        ),
        nn.BatchNorm2d(out_channels),
    ]


class AttentionBlock(nn.Module):
    """A bottleneck block whose middle is two kernel sizes side by side.

    The input's channels are split in two halves; one half goes through two 3x3
    convolutions, the other through two ``large_kernel`` x ``large_kernel`` ones (batch
    norm after each, ReLU between), the first of each pair carrying the stride. The two
    results are concatenated, a 1x1 convolution with batch norm gives ``out_channels``,
    and the shortcut (1x1 + batch norm when the shape changes) is added before a ReLU.

    Args:
        in_channels: Input channels (split ``c // 2`` and ``c - c // 2``).
        out_channels: Output channels.
        width: Channels after the two branches together (each branch ``width // 2``).
        stride: Stride of the block. Defaults to 1.
        large_kernel: Kernel of the second branch. Defaults to 7 (paper).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int,
        stride: int = 1,
        large_kernel: int = 7,
    ) -> None:
        super().__init__()
        if large_kernel < 1 or large_kernel % 2 == 0:
            raise ConfigError(
                f"AttentionBottleneckNeck: large_kernel must be odd and >= 1, got {large_kernel}"
            )
        self.split = [in_channels // 2, in_channels - in_channels // 2]
        half = max(1, width // 2)
        self.branches = nn.ModuleList(
            nn.Sequential(
                *_conv_bn(c, half, k, stride), nn.ReLU(inplace=True), *_conv_bn(half, half, k)
            )
            for c, k in zip(self.split, (3, large_kernel))
        )
        self.project = nn.Sequential(*_conv_bn(2 * half, out_channels, 1))
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(*_conv_bn(in_channels, out_channels, 1, stride))
        else:
            self.shortcut = nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        halves = torch.split(x, self.split, dim=1)
        out = torch.cat([branch(h) for branch, h in zip(self.branches, halves)], dim=1)
        return self.act(self.project(out) + self.shortcut(x))


@MODELS.register_module()
class AttentionBottleneckNeck(nn.Module):
    """Multi-scale fusion of the teacher's levels, then a stage of :class:`AttentionBlock`.

    The fusion is Reverse Distillation's (stride-2 3x3 convolutions bring every level to
    the last one's resolution, then concatenation); the embedding stage is
    ``num_blocks`` attention blocks, the first with stride 2, giving
    ``out_channels`` at twice the last level's stride, where the decoder starts.
    Channel widths come from the backbone (the model fills them).

    Args:
        in_channels: Channels of each teacher level, fine to coarse. Defaults to None
            (filled by the model).
        reductions: Stride of each level. Defaults to None (filled by the model).
        out_channels: Channels of the embedding. Defaults to twice the last level's
            (WideResNet-50: 2048, as the paper's code).
        num_blocks: Attention blocks. Defaults to 3 (paper's code).
        width_ratio: Width of a block's middle as a fraction of ``out_channels``.
            Defaults to 0.25 (the official code's 512 of 2048: ResNet-50 block widths).
        large_kernel: Kernel of the second branch. Defaults to 7 (paper).
    """

    def __init__(
        self,
        in_channels: Sequence[int] | None = None,
        reductions: Sequence[int] | None = None,
        out_channels: int | None = None,
        num_blocks: int = 3,
        width_ratio: float = 0.25,
        large_kernel: int = 7,
    ) -> None:
        super().__init__()
        if not in_channels or not reductions:
            raise ConfigError(
                "AttentionBottleneckNeck needs in_channels and reductions; build it inside "
                "a model, which fills them from the backbone"
            )
        if len(in_channels) != len(reductions) or len(in_channels) < 2:
            raise ConfigError(
                f"AttentionBottleneckNeck: in_channels {list(in_channels)} and reductions "
                f"{list(reductions)} must name the same >= 2 levels"
            )
        if num_blocks < 1:
            raise ConfigError(f"AttentionBottleneckNeck: num_blocks must be >= 1, got {num_blocks}")
        self.in_channels = list(in_channels)
        self.fuse, fused = multiscale_fusion(
            self.in_channels, list(reductions), "AttentionBottleneckNeck"
        )
        self.out_channels = out_channels or 2 * self.in_channels[-1]
        self.out_reduction = 2 * list(reductions)[-1]
        width = max(2, round(self.out_channels * width_ratio))
        blocks = [AttentionBlock(fused, self.out_channels, width, 2, large_kernel)]
        blocks += [
            AttentionBlock(self.out_channels, self.out_channels, width, 1, large_kernel)
            for _ in range(num_blocks - 1)
        ]
        self.embed = nn.Sequential(*blocks)
        init_resnet_weights(self)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """(B, C_i, H_i, W_i) per level -> (B, out_channels, H_last / 2, W_last / 2)."""
        return self.embed(fuse_levels(self.fuse, features))
