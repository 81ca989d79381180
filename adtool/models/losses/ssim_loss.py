"""Structural-similarity loss and per-pixel dissimilarity map (kornia's SSIM)."""

from __future__ import annotations

import torch
from kornia.losses import ssim_loss
from kornia.metrics import ssim
from torch import nn

from adtool.registry import MODELS


def ssim_distance_map(
    x: torch.Tensor, y: torch.Tensor, window_size: int = 11, max_val: float = 1.0
) -> torch.Tensor:
    """(B, C, H, W) image pairs -> (B, H, W) map ``1 - SSIM``, averaged over channels.

    0 where the images agree, up to 2 where they are anti-correlated. ``max_val`` is the
    images' dynamic range (2.0 for images normalised to [-1, 1]).
    """
    return 1.0 - ssim(x, y, window_size, max_val=max_val).mean(1)


@MODELS.register_module()
class SSIMLoss(nn.Module):
    """``loss_weight * (1 - mean SSIM)`` between two image batches.

    The form DRAEM (and the SSIM autoencoder of Bergmann et al. 2019) trains with; kornia's
    ``ssim_loss`` returns ``(1 - SSIM) / 2``, hence the factor 2.

    Args:
        window_size: Side of the Gaussian window (sigma 1.5). Defaults to 11.
        max_val: Dynamic range of the images. Defaults to 1.0.
        loss_weight: Factor on the loss. Defaults to 1.0.
    """

    def __init__(self, window_size: int = 11, max_val: float = 1.0, loss_weight: float = 1.0):
        super().__init__()
        self.window_size = int(window_size)
        self.max_val = float(max_val)
        self.loss_weight = float(loss_weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) reconstructions and targets -> scalar loss."""
        return self.loss_weight * 2.0 * ssim_loss(x, y, self.window_size, max_val=self.max_val)
