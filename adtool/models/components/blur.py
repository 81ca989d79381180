"""Gaussian smoothing of anomaly maps."""

from __future__ import annotations

import torch
from kornia.filters import gaussian_blur2d


def blur_kernel_size(sigma: float) -> int:
    """Odd kernel size covering +-4 sigma."""
    return 2 * int(4.0 * sigma + 0.5) + 1


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur (B, 1, H, W) maps with a Gaussian of std ``sigma`` pixels (reflect border)."""
    if sigma <= 0:
        return maps
    size = blur_kernel_size(sigma)
    return gaussian_blur2d(maps, (size, size), (sigma, sigma), border_type="reflect")
