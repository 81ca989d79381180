"""A multivariate Gaussian per patch position, scored by Mahalanobis distance (PaDiM)."""

from __future__ import annotations

import torch
from torch import nn

from adtool.errors import DataError
from adtool.models.components.gaussian import DEFAULT_MEMORY_MB, fit_gaussian, mahalanobis
from adtool.registry import MODELS


@MODELS.register_module()
class GaussianHead(nn.Module):
    """Fit N(mean_ij, cov_ij) to the training embeddings at every position (i, j).

    The covariance is regularised by ``reg * I`` and inverted once at fit time; a test
    patch scores its Mahalanobis distance to its own position's Gaussian. The fit works
    through positions in float64 chunks of about ``memory_mb`` (see :func:`fit_gaussian`),
    so it adds little to the collected embeddings themselves.

    Buffers (float32, saved in the checkpoint): ``mean`` (P, d) and ``inv_cov`` (P, d, d)
    with P = h * w positions, i.e. ``4 * P * d * d`` bytes for the inverses:
    WideResNet-50 at 224 px (56 x 56, d = 550) 3.8 GB; ResNet-18 at 224 px (d = 100)
    125 MB; EfficientNet-Lite0 at 256 px (64 x 64, d = 100) 164 MB. The training
    embeddings held before the fit take ``4 * N * P * d`` bytes (WideResNet-50, 391
    images: 2.7 GB).

    Args:
        reg: Added to each covariance diagonal. Defaults to 0.01 (paper).
        memory_mb: Bound on one float64 chunk of the fit, in MiB. Defaults to 256.
    """

    def __init__(self, reg: float = 0.01, memory_mb: int = DEFAULT_MEMORY_MB) -> None:
        super().__init__()
        self.reg = reg
        self.memory_mb = memory_mb
        self.register_buffer("mean", torch.empty(0, 0))
        self.register_buffer("inv_cov", torch.empty(0, 0, 0))

    @property
    def is_fitted(self) -> bool:
        return self.mean.numel() > 0

    def fit(self, embeddings: torch.Tensor) -> None:
        """Fit from (N, d, h, w) training embeddings."""
        if embeddings.shape[0] < 2:
            raise DataError(
                f"GaussianHead needs at least 2 training images to estimate a covariance, "
                f"got {embeddings.shape[0]}; add normal images to the train split"
            )
        # (N, d, P) -> (N, P, d) as a view: fit_gaussian copies one chunk at a time.
        samples = embeddings.flatten(2).transpose(1, 2)
        self.mean, self.inv_cov = fit_gaussian(samples, self.reg, self.memory_mb)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The sizes are only known after fitting: take the checkpoint's shapes.
        for name in ("mean", "inv_cov"):
            key = prefix + name
            if key in state_dict:
                setattr(self, name, torch.empty_like(state_dict[key]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(B, d, h, w) embeddings -> (B, h, w) Mahalanobis distances."""
        if not self.is_fitted:
            raise RuntimeError("GaussianHead has no statistics: fit the model first")
        b, d, h, w = embeddings.shape
        if (h * w, d) != tuple(self.mean.shape):
            raise DataError(
                f"GaussianHead was fitted on {self.mean.shape[0]} positions x "
                f"{self.mean.shape[1]} channels but got {h}x{w} x {d}; test images must have "
                "the training image size"
            )
        dist = mahalanobis(embeddings.flatten(2).transpose(1, 2), self.mean, self.inv_cov)
        return dist.view(b, h, w)
