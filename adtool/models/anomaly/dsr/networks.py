"""DSR's object-specific parts: subspace restriction, object-specific decoder, U-Nets.

Layer plan of the official code (``dsr_model.py``): instance-normalised 3x3 convolution
stages; the subspace restriction network is an encoder-decoder without skips (two
poolings) whose output is re-quantised with the frozen codebook; the anomaly detection
and upsampling modules are U-Nets (three poolings, skips) on concatenated images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .vq import ResidualStack, VectorQuantizer


def conv_stage(
    in_channels: int, out_channels: int, mid_channels: int | None = None
) -> nn.Sequential:
    """Two (3x3 convolution, instance norm, ReLU) layers."""
    mid = out_channels if mid_channels is None else mid_channels
    return nn.Sequential(
        nn.Conv2d(in_channels, mid, 3, padding=1),
        nn.InstanceNorm2d(mid),
        nn.ReLU(),
        nn.Conv2d(mid, out_channels, 3, padding=1),
        nn.InstanceNorm2d(out_channels),
        nn.ReLU(),
    )


def up_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """Bilinear x2 upsampling, 3x3 convolution, instance norm, ReLU."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.InstanceNorm2d(out_channels),
        nn.ReLU(),
    )


class SubspaceRestriction(nn.Module):
    """Maps (possibly anomalous) quantised features towards the normal subspace (Sec. 3.2).

    Encoder (w, 2w, 4w channels, two poolings) and decoder without skips back to ``D``
    channels; the output is re-quantised with the level's frozen codebook.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        w = channels
        self.encoder = nn.ModuleList(
            (conv_stage(w, w), conv_stage(w, 2 * w), conv_stage(2 * w, 4 * w))
        )
        self.decoder = nn.Sequential(
            up_conv(4 * w, 2 * w),
            conv_stage(2 * w, 2 * w),
            up_conv(2 * w, w),
            conv_stage(w, w),
            nn.Conv2d(w, channels, 3, padding=1),
        )

    def forward(
        self, x: torch.Tensor, quantizer: VectorQuantizer
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(restored features, their quantisation)."""
        for i, stage in enumerate(self.encoder):
            x = stage(x if i == 0 else F.max_pool2d(x, 2))
        features = self.decoder(x)
        return features, quantizer(features)


class ObjectSpecificDecoder(nn.Module):
    """Decodes (upsampled Q_lo, Q_hi) at 1/4 resolution into an image (Sec. 3.2).

    Two pooled stages (c -> 2c -> 4c), a 1x1 bottleneck to 64, two transposed convolutions
    back to 1/4, a residual stack and two more transposed convolutions to the image.
    """

    def __init__(self, in_channels: int, hidden: int, residual_layers: int, residual_hidden: int):
        super().__init__()
        c = in_channels
        self.stage1 = conv_stage(c, 2 * c, c)
        self.stage2 = conv_stage(2 * c, 4 * c, 2 * c)
        self.bottleneck = nn.Conv2d(4 * c, 64, 1)
        self.up = nn.Sequential(
            nn.ConvTranspose2d(64, 64, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(64, 64, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, hidden, 3, padding=1),
            ResidualStack(hidden, residual_hidden, residual_layers),
            nn.ConvTranspose2d(hidden, hidden // 2, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(hidden // 2, 3, 4, stride=2, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.stage1(x), 2)
        x = F.max_pool2d(self.stage2(x), 2)
        return self.up(self.bottleneck(x))


class UNet(nn.Module):
    """U-Net with stages (w, 2w, 4w, 4w), three poolings and skips; 2 output channels.

    The anomaly detection module reads (object-specific image, general image); the
    upsampling module additionally the detection module's softmax map.
    """

    def __init__(self, in_channels: int, out_channels: int = 2, width: int = 64) -> None:
        super().__init__()
        w = width
        enc = (w, 2 * w, 4 * w, 4 * w)
        self.enc = nn.ModuleList(
            conv_stage(in_channels if i == 0 else enc[i - 1], c) for i, c in enumerate(enc)
        )
        self.ups = nn.ModuleList((up_conv(4 * w, 4 * w), up_conv(4 * w, 2 * w), up_conv(2 * w, w)))
        self.dec = nn.ModuleList(
            (conv_stage(8 * w, 4 * w), conv_stage(4 * w, 2 * w), conv_stage(2 * w, w))
        )
        self.out = nn.Conv2d(w, out_channels, 3, padding=1)

    def forward(self, *images: torch.Tensor) -> torch.Tensor:
        x = torch.cat(images, 1)
        skips = []
        for i, stage in enumerate(self.enc):
            x = stage(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for up, stage, skip in zip(self.ups, self.dec, reversed(skips[:-1])):
            x = stage(torch.cat((up(x), skip), 1))
        return self.out(x)


class Reprojection(nn.Module):
    """What the re-projection stage trains: both subspace restriction modules, the
    object-specific decoder and the anomaly detection module."""

    def __init__(
        self,
        embedding_dim: int,
        hidden: int,
        residual_layers: int,
        residual_hidden: int,
        anomaly_width: int,
    ) -> None:
        super().__init__()
        self.restrict_top = SubspaceRestriction(embedding_dim)
        self.restrict_bottom = SubspaceRestriction(embedding_dim)
        self.decoder = ObjectSpecificDecoder(
            2 * embedding_dim, hidden, residual_layers, residual_hidden
        )
        self.anomaly_module = UNet(6, 2, anomaly_width)
