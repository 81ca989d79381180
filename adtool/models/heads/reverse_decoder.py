"""Reverse decoder: a de-ResNet restoring encoder features (Deng & Li 2022, Sec. 3.1).

Shared by Reverse Distillation (the student decoder) and UniNet (its student).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from adtool.errors import ConfigError
from adtool.models.components.residual_block import (
    ResidualBlock,
    halving_steps,
    init_resnet_weights,
)
from adtool.registry import MODELS


@MODELS.register_module()
class ReverseDecoder(nn.Module):
    """Mirror of the encoder: from the one-class embedding back to each encoder level.

    One stage per encoder level, coarse to fine; a stage's first residual block
    upsamples with a transposed convolution (kernel = stride), the others keep the
    resolution. Stage ``k`` outputs the channels and resolution of encoder level ``k``,
    so that a per-position cosine between the two measures how well the normal pattern
    was restored. Widths come from the encoder; the model fills them.

    Args:
        in_channels: Channels of the embedding. Defaults to None (filled by the model).
        out_channels: Channels of each encoder level, fine to coarse. Defaults to None
            (filled by the model).
        reductions: Stride of each encoder level. Defaults to None (filled by the model).
        in_reduction: Stride of the embedding. Defaults to None (filled by the model).
        num_blocks: Residual blocks per stage, coarsest stage first. Defaults to
            (3, 4, 6) (the paper's de-WideResNet-50).
        block: ``'bottleneck'`` or ``'basic'``. Defaults to ``'bottleneck'`` (paper).
        width_ratio: Bottleneck width as a fraction of a stage's output channels.
            Defaults to 0.5 (WideResNet-50).
        relu_out: End each stage with a ReLU (paper: ResNet levels are post-ReLU, so
            non-negative). Set False for encoders whose levels can be negative, such as
            EfficientNet's linear-bottleneck stages: a non-negative restoration could not
            point the way such a feature does. Defaults to True.
    """

    def __init__(
        self,
        in_channels: int | None = None,
        out_channels: Sequence[int] | None = None,
        reductions: Sequence[int] | None = None,
        in_reduction: int | None = None,
        num_blocks: Sequence[int] = (3, 4, 6),
        block: str = "bottleneck",
        width_ratio: float = 0.5,
        relu_out: bool = True,
    ) -> None:
        super().__init__()
        if not in_channels or not out_channels or not reductions or not in_reduction:
            raise ConfigError(
                "ReverseDecoder needs in_channels, out_channels, reductions and in_reduction; "
                "build it inside a model, which fills them from the backbone and the neck"
            )
        if len(num_blocks) != len(out_channels) or len(reductions) != len(out_channels):
            raise ConfigError(
                f"ReverseDecoder: num_blocks {list(num_blocks)} must give one stage per "
                f"encoder level ({len(out_channels)} levels)"
            )
        self.out_channels = list(out_channels)
        targets = list(zip(self.out_channels, reductions))[::-1]
        stages = []
        channels, reduction = in_channels, in_reduction
        for (c, r), n in zip(targets, num_blocks):
            steps = halving_steps(reduction / r, "ReverseDecoder")
            mid = max(1, round(c * width_ratio))
            blocks = []
            for i in range(n):
                last = i == n - 1
                blocks.append(
                    ResidualBlock(
                        channels if i == 0 else c,
                        c,
                        mid,
                        resample="up" if i == 0 and steps else None,
                        stride=2**steps if i == 0 else 1,
                        block=block,
                        relu_out=relu_out or not last,
                    )
                )
            stages.append(nn.Sequential(*blocks))
            channels, reduction = c, r
        self.stages = nn.ModuleList(stages)
        init_resnet_weights(self)

    def forward(
        self, embedding: torch.Tensor, sizes: Sequence[Sequence[int]] | None = None
    ) -> list[torch.Tensor]:
        """(B, D, h, w) embedding -> one (B, C_i, H_i, W_i) map per encoder level, fine first.

        Args:
            embedding: The bottleneck's output.
            sizes: Spatial size of each encoder level, fine first; a stage whose output
                differs (odd input sizes round differently) is resized to it.
                Defaults to None (no resizing).
        """
        outputs = []
        x = embedding
        wanted = list(sizes)[::-1] if sizes is not None else [None] * len(self.stages)
        for stage, size in zip(self.stages, wanted):
            x = stage(x)
            if size is not None and tuple(x.shape[-2:]) != tuple(size):
                x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
            outputs.append(x)
        return outputs[::-1]
