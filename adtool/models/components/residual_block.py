"""ResNet residual blocks that keep, reduce or enlarge the resolution.

Shared by the one-class bottleneck of Reverse Distillation (Deng & Li, CVPR 2022;
``OCBENeck``, strided convolutions) and the reverse decoder
(:class:`~adtool.models.heads.ReverseDecoder`, transposed convolutions) that Reverse
Distillation and UniNet use as their student.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from adtool.errors import ConfigError


def halving_steps(ratio: float, what: str) -> int:
    """log2 of a power-of-two resolution ratio; a ConfigError for any other ratio."""
    steps = round(math.log2(ratio)) if ratio >= 1 else -1
    if steps < 0 or 2**steps != ratio:
        raise ConfigError(
            f"{what}: resolution ratio {ratio} between feature levels is not a power of 2; "
            "pick backbone out_indices whose strides double (e.g. (1, 2, 3))"
        )
    return steps


RESAMPLE_MODES = (None, "down", "up")
BLOCK_TYPES = ("bottleneck", "basic")


def _resampling_conv(
    in_channels: int, out_channels: int, kernel_size: int, stride: int, resample: str | None
) -> nn.Module:
    """A bias-free convolution that divides (down) or multiplies (up) the size by ``stride``."""
    if resample == "up" and stride > 1:
        # Kernel = stride: every output pixel has exactly one input pixel (the paper's
        # 2x2 deconvolution with stride 2).
        return nn.ConvTranspose2d(
            in_channels, out_channels, kernel_size=stride, stride=stride, bias=False
        )
    step = stride if resample == "down" else 1
    return nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size=kernel_size,
        stride=step,
        padding=kernel_size // 2,
        bias=False,
    )


class ResidualBlock(nn.Module):
    """A ResNet block (bottleneck or basic) with an optional change of resolution.

    ``resample='down'`` puts the stride on the 3x3 convolution (ResNet v1.5),
    ``'up'`` replaces that convolution by a ``stride`` x ``stride`` transposed one, as
    the reverse decoder of RD4AD does. The shortcut is a 1x1 convolution (or a transposed
    one) with batch norm whenever the shape changes, the identity otherwise.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        mid_channels: Width of the bottleneck's inner convolutions (ignored by
            ``'basic'``). Defaults to ``out_channels // 2``.
        resample: None, ``'down'`` or ``'up'``. Defaults to None.
        stride: Resolution factor when resampling. Defaults to 2.
        block: ``'bottleneck'`` (1x1-3x3-1x1) or ``'basic'`` (3x3-3x3).
            Defaults to ``'bottleneck'``.
        relu_out: End with a ReLU after the residual sum, as ResNet does. Defaults to True.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        mid_channels: int | None = None,
        resample: str | None = None,
        stride: int = 2,
        block: str = "bottleneck",
        relu_out: bool = True,
    ) -> None:
        super().__init__()
        if resample not in RESAMPLE_MODES:
            raise ValueError(f"resample must be one of {RESAMPLE_MODES}, got {resample!r}")
        if block not in BLOCK_TYPES:
            raise ValueError(f"block must be one of {BLOCK_TYPES}, got {block!r}")
        stride = stride if resample is not None else 1
        if block == "bottleneck":
            mid = mid_channels or max(1, out_channels // 2)
            self.body = nn.Sequential(
                nn.Conv2d(in_channels, mid, 1, bias=False),
                nn.BatchNorm2d(mid),
                nn.ReLU(inplace=True),
                _resampling_conv(mid, mid, 3, stride, resample),
                nn.BatchNorm2d(mid),
                nn.ReLU(inplace=True),
                nn.Conv2d(mid, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.body = nn.Sequential(
                _resampling_conv(in_channels, out_channels, 3, stride, resample),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
                nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        if stride > 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                _resampling_conv(in_channels, out_channels, 1, stride, resample),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()
        self.act = nn.ReLU(inplace=True) if relu_out else nn.Identity()

    def forward(self, x):
        return self.act(self.body(x) + self.shortcut(x))


def init_resnet_weights(module: nn.Module) -> None:
    """He (fan-out) init of convolutions, unit/zero batch norm, as torchvision's ResNet."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _strided_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def multiscale_fusion(
    in_channels: Sequence[int], reductions: Sequence[int], what: str
) -> tuple[nn.ModuleList, int]:
    """Strided convolutions bringing every level but the last to the last's resolution.

    The multi-scale feature fusion of RD4AD's bottleneck (also UniNet's): level ``i`` goes
    through ``log2(stride ratio)`` stride-2 3x3 convolutions (batch norm, ReLU), its
    channels growing geometrically to the last level's (WideResNet-50: 256 -> 512 -> 1024
    and 512 -> 1024). Returns the convolutions (one ``nn.Sequential`` per level) and the
    channels of the concatenation :func:`fuse_levels` gives.
    """
    last_c, last_r = in_channels[-1], reductions[-1]
    fuse = nn.ModuleList()
    fused = last_c
    for c, r in zip(in_channels[:-1], reductions[:-1]):
        steps = halving_steps(last_r / r, what)
        widths = [round(c * (last_c / c) ** (j / max(steps, 1))) for j in range(steps + 1)]
        convs = [_strided_conv(a, b) for a, b in zip(widths[:-1], widths[1:])]
        fuse.append(nn.Sequential(*convs))
        fused += widths[-1]
    return fuse, fused


def fuse_levels(fuse: nn.ModuleList, features: Sequence[torch.Tensor]) -> torch.Tensor:
    """Apply :func:`multiscale_fusion`'s convolutions and concatenate with the last level."""
    if len(features) != len(fuse) + 1:
        raise ValueError(f"expected {len(fuse) + 1} levels, got {len(features)}")
    size = features[-1].shape[-2:]
    levels = []
    for convs, feat in zip(fuse, features[:-1]):
        feat = convs(feat)
        if feat.shape[-2:] != size:
            # Odd input sizes round differently along the two paths.
            feat = F.interpolate(feat, size=size, mode="bilinear", align_corners=False)
        levels.append(feat)
    levels.append(features[-1])
    return torch.cat(levels, dim=1)
