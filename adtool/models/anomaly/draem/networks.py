"""DRAEM's two U-Net-like sub-networks and the SSPCAB block (parts only DRAEM uses).

Layer plan of the official code (VitjanZ/DRAEM, ``model_unet.py``): stages of two
3x3 convolution + batch norm + ReLU, 2x2 max pooling between them, bilinear x2 upsampling
+ 3x3 convolution on the way up. The reconstructive network has no skip connections; the
discriminative one concatenates each encoder stage into the decoder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_stage(
    in_channels: int, out_channels: int, mid_channels: int | None = None
) -> nn.Sequential:
    """Two (3x3 convolution, batch norm, ReLU) layers, through ``mid_channels`` (defaults
    to ``out_channels``)."""
    mid = out_channels if mid_channels is None else mid_channels
    return nn.Sequential(
        nn.Conv2d(in_channels, mid, 3, padding=1),
        nn.BatchNorm2d(mid),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def up_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    """Bilinear x2 upsampling, then 3x3 convolution, batch norm, ReLU."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SSPCAB(nn.Module):
    """Self-Supervised Predictive Convolutional Attentive Block.

    "Self-Supervised Predictive Convolutional Attentive Block for Anomaly Detection",
    Ristea et al., CVPR 2022, arXiv 2111.09099. A masked convolution: four ``k x k``
    kernels sit at the corners of a ``(2k + 2d + 1)`` receptive field whose centre (the
    pixel it predicts, with a margin ``d``) is hidden; their sum goes through a ReLU and a
    squeeze-and-excitation channel attention. Trained to reproduce its own input (an MSE
    the owning model adds to its loss), so it learns to predict masked content.

    Args:
        channels: Input and output channels.
        kernel_size: Side ``k`` of each corner kernel. Defaults to 1 (the paper's).
        dilation: Margin ``d`` between the corner kernels and the hidden centre.
            Defaults to 1 (the paper's).
        reduction: Channel reduction of the attention. Defaults to 8 (the paper's).
    """

    def __init__(
        self, channels: int, kernel_size: int = 1, dilation: int = 1, reduction: int = 8
    ) -> None:
        super().__init__()
        self.pad = kernel_size + dilation
        self.offset = kernel_size + 2 * dilation + 1
        self.corners = nn.ModuleList(nn.Conv2d(channels, channels, kernel_size) for _ in range(4))
        hidden = max(1, channels // reduction)
        self.attention = nn.Sequential(
            nn.Linear(channels, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, o = self.pad, self.offset
        x = F.pad(x, (p, p, p, p))
        # Top-left, bottom-left, top-right, bottom-right kernels of the masked field.
        views = (
            x[:, :, :-o, :-o],
            x[:, :, o:, :-o],
            x[:, :, :-o, o:],
            x[:, :, o:, o:],
        )
        x = F.relu(sum(conv(v) for conv, v in zip(self.corners, views)))
        weights = self.attention(x.mean((2, 3)))
        return x * weights[:, :, None, None]


class ReconstructiveEncoder(nn.Module):
    """Five stages (w, 2w, 4w, 8w, 8w channels), four poolings: /16 resolution.

    With ``sspcab`` the last stage is an :class:`SSPCAB` (the placement of Ristea et
    al.'s DRAEM variant); :attr:`sspcab_io` then holds its last (input, output).
    """

    def __init__(self, in_channels: int, width: int, sspcab: bool = False) -> None:
        super().__init__()
        chans = (width, 2 * width, 4 * width, 8 * width)
        stages, prev = [], in_channels
        for c in chans:
            stages.append(conv_stage(prev, c))
            prev = c
        self.stages = nn.ModuleList(stages)
        self.last = SSPCAB(8 * width) if sspcab else conv_stage(8 * width, 8 * width)
        self.sspcab = sspcab
        self.sspcab_io: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, stage in enumerate(self.stages):
            x = stage(x if i == 0 else F.max_pool2d(x, 2))
        x = F.max_pool2d(x, 2)
        out = self.last(x)
        if self.sspcab:
            self.sspcab_io = (x, out)
        return out


class ReconstructiveDecoder(nn.Module):
    """Four upsamplings, stages to 4w, 2w, w, w channels, a 3x3 convolution to the image."""

    def __init__(self, width: int, out_channels: int) -> None:
        super().__init__()
        chans = (8 * width, 4 * width, 2 * width, width, width)
        self.ups = nn.ModuleList(up_conv(chans[i], chans[i]) for i in range(4))
        # The official stages change the channel count in their second convolution.
        self.stages = nn.ModuleList(conv_stage(chans[i], chans[i + 1], chans[i]) for i in range(4))
        self.out = nn.Conv2d(width, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for up, stage in zip(self.ups, self.stages):
            x = stage(up(x))
        return self.out(x)


class ReconstructiveNet(nn.Module):
    """Encoder-decoder without skips: an anomalous image in, its normal version out."""

    def __init__(self, channels: int = 3, width: int = 128, sspcab: bool = False) -> None:
        super().__init__()
        self.encoder = ReconstructiveEncoder(channels, width, sspcab)
        self.decoder = ReconstructiveDecoder(width, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class DiscriminativeNet(nn.Module):
    """U-Net on (reconstruction, input) pairs: six stages (w, 2w, 4w, 8w, 8w, 8w), five
    poolings, skip connections, logits of (normal, anomalous) per pixel."""

    def __init__(self, in_channels: int = 6, width: int = 64, out_channels: int = 2) -> None:
        super().__init__()
        enc = (width, 2 * width, 4 * width, 8 * width, 8 * width, 8 * width)
        self.enc = nn.ModuleList(
            conv_stage(in_channels if i == 0 else enc[i - 1], c) for i, c in enumerate(enc)
        )
        # Decoder, coarse to fine: upsample to the channels of the skip's level (capped as
        # in the official code), concatenate the skip, two convolutions.
        dec = (8 * width, 4 * width, 2 * width, width, width)
        ups, stages, prev = [], [], enc[-1]
        for level, c in zip(range(4, -1, -1), dec):
            ups.append(up_conv(prev, c))
            stages.append(conv_stage(c + enc[level], c))
            prev = c
        self.ups = nn.ModuleList(ups)
        self.dec = nn.ModuleList(stages)
        self.out = nn.Conv2d(width, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, stage in enumerate(self.enc):
            x = stage(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for up, stage, skip in zip(self.ups, self.dec, reversed(skips[:-1])):
            x = stage(torch.cat((up(x), skip), 1))
        return self.out(x)
