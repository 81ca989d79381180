"""Dinomaly's noisy bottleneck: an MLP whose dropout also hits its input features."""

from __future__ import annotations

import torch
from timm.layers import Mlp
from torch import nn

from adtool.registry import MODELS

from .decoder import init_dinomaly_weights


@MODELS.register_module()
class NoisyBottleneck(nn.Module):
    """Dropout on the fused encoder tokens, then a two-layer MLP with dropout (Sec. 3.2).

    The dropout on the input is the "noise": the decoder must restore the encoder's
    features from a corrupted copy, so on an anomaly it restores the normal features it
    learned instead of copying the input (identity mapping). No extra noise is injected.
    Weights start as the official code's (:func:`init_dinomaly_weights`).

    Args:
        in_channels: Token width (the encoder's embedding width).
        hidden_ratio: Hidden width as a multiple of ``in_channels``. Defaults to 4.
        dropout: Dropout probability on the input, the hidden layer and the output.
            Defaults to 0.2 (paper).
        bias: Biases in the two linear layers. Defaults to True.
    """

    def __init__(
        self, in_channels: int, hidden_ratio: float = 4.0, dropout: float = 0.2, bias: bool = True
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.noise = nn.Dropout(dropout)
        self.mlp = Mlp(
            in_features=in_channels,
            hidden_features=int(in_channels * hidden_ratio),
            act_layer=nn.GELU,
            bias=bias,
            drop=dropout,
        )
        init_dinomaly_weights(self)

    @property
    def out_channels(self) -> int:
        return self.in_channels

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, N, C)."""
        return self.mlp(self.noise(tokens))
