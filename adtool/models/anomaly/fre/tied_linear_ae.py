"""Shallow linear autoencoder with tied weights, scored by reconstruction error (FRE)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from adtool.errors import ConfigError, DataError
from adtool.registry import MODELS


@MODELS.register_module()
class TiedLinearAE(nn.Module):
    """``x -> W^T (W x + b_enc) + b_dec`` on flattened feature maps, as anomalib's FRE.

    One (latent_dim, input_dim) matrix ``W`` encodes and (transposed) decodes; there is no
    non-linearity, so a trained AE spans a ``latent_dim``-dimensional affine subspace of
    the feature space, like PCA (DFM) but learnt by gradient on mini-batches, which
    scales to 65536-d vectors without a D x D covariance. Weights start Xavier-uniform,
    biases at zero (anomalib).

    The map is the squared residual of the flattened vector reshaped back to (C, h, w)
    and summed over C: one value per pooled position, whose sum is the image's feature
    reconstruction error.

    Args:
        input_dim: Length of the flattened feature vector C x h x w. ``FRE`` fills it from
            its backbone, pooling and input size (paper: 1024 x 8 x 8 = 65536).
        latent_dim: Width of the bottleneck. Defaults to 220 (paper, anomalib).
    """

    def __init__(self, input_dim: int, latent_dim: int = 220) -> None:
        super().__init__()
        if not 0 < latent_dim < input_dim:
            raise ConfigError(
                f"TiedLinearAE latent_dim={latent_dim} must be in (0, input_dim={input_dim}); "
                "set model.head.latent_dim"
            )
        self.input_dim = input_dim
        self.latent_dim = latent_dim
        self.weight = nn.Parameter(torch.empty(latent_dim, input_dim))
        self.encoder_bias = nn.Parameter(torch.zeros(latent_dim))
        self.decoder_bias = nn.Parameter(torch.zeros(input_dim))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        """(B, D) feature vectors -> (B, D) reconstructions."""
        if flat.shape[-1] != self.input_dim:
            raise DataError(
                f"TiedLinearAE was built for {self.input_dim}-d features but got "
                f"{flat.shape[-1]}; test images must have the size model.input_size gives"
            )
        return F.linear(
            F.linear(flat, self.weight, self.encoder_bias), self.weight.t(), self.decoder_bias
        )

    def error_map(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) features -> (B, h, w) squared reconstruction error per position."""
        b, c, h, w = features.shape
        flat = features.flatten(1)
        return (flat - self(flat)).square().view(b, c, h, w).sum(1)
