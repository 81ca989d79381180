"""Convolutional autoencoder (the reconstruction baseline).

The autoencoder baselines of "MVTec AD - A Comprehensive Real-World Dataset for
Unsupervised Anomaly Detection", Bergmann et al., CVPR 2019, and "Improving Unsupervised
Defect Segmentation by Applying Structural Similarity to Autoencoders", Bergmann et al.,
VISAPP 2019, arXiv 1807.02011. A convolutional autoencoder with a small latent vector
learns to reconstruct normal images; a pixel scores its reconstruction error (squared
error, or 1 - SSIM), an image the maximum (or the mean of the top-k) of its map.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from adtool.errors import ConfigError
from adtool.models.anomaly.base import BaseAnomalyModel
from adtool.models.components.dcgan import DCGANDecoder, DCGANEncoder, dcgan_init
from adtool.models.losses.ssim_loss import SSIMLoss, ssim_distance_map
from adtool.registry import MODELS
from adtool.structures import AnomalyDataSample


@MODELS.register_module()
class ConvAutoencoder(BaseAnomalyModel):
    """DCGAN-style encoder to a ``latent_dim`` vector and mirrored decoder (tanh output).

    Inputs must be normalised to [-1, 1] (data preprocessor mean = std = 127.5), the range
    of the decoder's tanh; the reconstruction target is the normalised input.

    Args:
        input_size: Side of the square input, a power of two >= 16. Defaults to 128
            (Bergmann et al.'s patches).
        latent_dim: Size of the bottleneck vector. Defaults to 100 (Bergmann et al.).
        base_channels: Channels of the first encoder stage, doubled at each stage.
            Defaults to 32 (Bergmann et al.).
        ssim_weight: Weight of the SSIM loss added to the mean squared error; 0 trains on
            L2 only. Defaults to 0.0.
        map_type: Per-pixel error: ``'l2'`` (squared error averaged over channels) or
            ``'ssim'`` (1 - SSIM). Defaults to ``'l2'``.
        score: Image score from the map: ``'max'`` or ``'topk_mean'`` (mean of the
            ``topk_fraction`` highest pixels). Defaults to ``'max'``.
        topk_fraction: Share of pixels averaged by ``'topk_mean'``. Defaults to 0.01.
        ssim_window: SSIM window side (loss and map). Defaults to 11.
        blur_sigma: Std of a Gaussian smoothing of the map in pixels; 0 turns it off.
            Defaults to 0.0.
        data_preprocessor: Config of the batch normaliser. Defaults to None.
        init_cfg: mmengine init config. Defaults to None.
    """

    # The dynamic range of images normalised to [-1, 1], SSIM's max_val.
    value_range = 2.0

    def __init__(
        self,
        input_size: int = 128,
        latent_dim: int = 100,
        base_channels: int = 32,
        ssim_weight: float = 0.0,
        map_type: Literal["l2", "ssim"] = "l2",
        score: Literal["max", "topk_mean"] = "max",
        topk_fraction: float = 0.01,
        ssim_window: int = 11,
        blur_sigma: float = 0.0,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if map_type not in ("l2", "ssim"):
            raise ConfigError(f"ConvAutoencoder map_type must be 'l2' or 'ssim', got {map_type!r}")
        if score not in ("max", "topk_mean"):
            raise ConfigError(f"ConvAutoencoder score must be 'max' or 'topk_mean', got {score!r}")
        if not 0.0 < topk_fraction <= 1.0:
            raise ConfigError(
                f"ConvAutoencoder topk_fraction must be in (0, 1], got {topk_fraction}"
            )
        self.input_size = int(input_size)
        self.encoder = DCGANEncoder(input_size, 3, latent_dim, base_channels)
        self.decoder = DCGANDecoder(input_size, latent_dim, 3, base_channels)
        self.apply(dcgan_init)
        self.ssim_weight = float(ssim_weight)
        self.ssim_loss = SSIMLoss(ssim_window, max_val=self.value_range)
        self.map_type = map_type
        self.score = score
        self.topk_fraction = float(topk_fraction)
        self.ssim_window = int(ssim_window)
        self.blur_sigma = float(blur_sigma)

    def reconstruct(self, inputs: torch.Tensor) -> torch.Tensor:
        """Normalised (B, 3, S, S) images -> their reconstructions, same shape."""
        if tuple(inputs.shape[-2:]) != (self.input_size, self.input_size):
            raise ConfigError(
                f"ConvAutoencoder was built for {self.input_size} px inputs but got "
                f"{tuple(inputs.shape[-2:])}; make model.input_size match the pipelines' Resize"
            )
        return self.decoder(self.encoder(inputs))

    def loss(self, inputs: torch.Tensor, data_samples: list[AnomalyDataSample] | None) -> dict:
        recon = self.reconstruct(inputs)
        losses = dict(loss_l2=F.mse_loss(recon, inputs))
        if self.ssim_weight > 0:
            losses["loss_ssim"] = self.ssim_weight * self.ssim_loss(recon, inputs)
        return losses

    def error_map(self, inputs: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
        """(B, H, W) reconstruction error of each pixel (0 where ``recon == inputs``)."""
        if self.map_type == "ssim":
            # 1 - SSIM is ~1e-12 (its eps), not 0, on identical images; clamp the noise.
            return ssim_distance_map(inputs, recon, self.ssim_window, self.value_range).clamp_min(
                0.0
            )
        return (inputs - recon).pow(2).mean(1)

    def score_from_map(self, maps: torch.Tensor) -> torch.Tensor:
        """(B, H, W) maps -> (B,) image scores (max, or mean of the top-k pixels)."""
        if self.score == "max":
            return self.image_score_from_map(maps)
        flat = maps.flatten(1)
        k = max(1, math.ceil(self.topk_fraction * flat.shape[1]))
        return flat.topk(k, dim=1).values.mean(1)

    @torch.no_grad()
    def anomaly_outputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.error_map(inputs, self.reconstruct(inputs))
        maps = self.to_input_map(maps, inputs.shape[-2:], self.blur_sigma)
        return self.score_from_map(maps), maps
