"""PCA of flattened image features, scored by reconstruction error or likelihood (DFM)."""

from __future__ import annotations

import math

import torch
from torch import nn

from adtool.errors import ConfigError, DataError
from adtool.models.components.pca import fit_pca, pca_inverse_transform, pca_transform
from adtool.registry import MODELS

SCORE_TYPES = ("fre", "nll")


@MODELS.register_module()
class PCAFeatureHead(nn.Module):
    """PCA over whole-image feature vectors (C x h x w flattened), as anomalib's DFM.

    Scores of an image with feature vector x, projection z = W (x - mu) onto the K kept
    components and variances lambda_k:

    * ``'fre'``: feature reconstruction error ``||x - (W^T z + mu)||^2``.
    * ``'nll'``: negative log-likelihood of z under N(0, diag(lambda)),
      ``0.5 * sum_k (z_k^2 / lambda_k + log(2 pi lambda_k))``.

    The map is always the reconstruction error split by grid position: the squared
    residual of the flattened vector, reshaped back to (C, h, w) and summed over C, so
    it lives on the pooled h x w grid and its sum is the ``'fre'`` score. The PCA is of
    the whole vector, so it cannot be applied to un-pooled or single-position features;
    an NLL has no per-position split, so ``'nll'`` scores the image by likelihood but
    localises with the same reconstruction-error map.

    Buffers (float32, saved in the checkpoint): ``mean`` (D,), ``components`` (K, D),
    ``variance`` (K,) with D = C * h * w (ResNet-50 layer3 at 224 px pooled by 4:
    1024 * 3 * 3 = 9216).

    Args:
        pca_level: Fraction of the training variance the kept components explain (float
            in (0, 1)), or their number (int). Defaults to 0.97 (anomalib).
        score_type: ``'fre'`` or ``'nll'``. Defaults to ``'fre'``.
    """

    def __init__(self, pca_level: float | int = 0.97, score_type: str = "fre") -> None:
        super().__init__()
        if score_type not in SCORE_TYPES:
            raise ConfigError(
                f"PCAFeatureHead score_type={score_type!r} is not one of {SCORE_TYPES}; set "
                "model.head.score_type to 'fre' or 'nll'"
            )
        self.pca_level = pca_level
        self.score_type = score_type
        self.register_buffer("mean", torch.empty(0))
        self.register_buffer("components", torch.empty(0, 0))
        self.register_buffer("variance", torch.empty(0))

    @property
    def is_fitted(self) -> bool:
        return self.mean.numel() > 0

    def fit(self, features: torch.Tensor) -> None:
        """Fit the PCA to (N, C, h, w) training features."""
        n = features.shape[0]
        if n < 2:
            raise DataError(
                f"PCAFeatureHead needs at least 2 training images, got {n}; add normal "
                "images to the train split"
            )
        try:
            fitted = fit_pca(features.flatten(1), self.pca_level)
        except ValueError as e:
            raise ConfigError(f"PCAFeatureHead pca_level: {e}; set model.head.pca_level") from None
        self.mean, self.components, variance = fitted
        # A component of zero variance (identical images) would divide the NLL by zero.
        self.variance = variance.clamp_min(torch.finfo(torch.float32).eps)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The sizes are only known after fitting: take the checkpoint's shapes.
        for name in ("mean", "components", "variance"):
            key = prefix + name
            if key in state_dict:
                setattr(self, name, torch.empty_like(state_dict[key]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, h, w) features -> image scores (B,) and error maps (B, h, w)."""
        if not self.is_fitted:
            raise RuntimeError("PCAFeatureHead has no PCA: fit the model first")
        b, c, h, w = features.shape
        flat = features.flatten(1)
        if flat.shape[1] != self.mean.numel():
            raise DataError(
                f"PCAFeatureHead was fitted on {self.mean.numel()}-d features but got "
                f"{c}x{h}x{w} = {flat.shape[1]}; test images must have the training size"
            )
        z = pca_transform(flat, self.mean, self.components)
        residual = flat - pca_inverse_transform(z, self.mean, self.components)
        error_map = residual.square().view(b, c, h, w).sum(1)
        if self.score_type == "fre":
            scores = error_map.flatten(1).sum(1)
        else:
            scores = 0.5 * (
                (z.square() / self.variance).sum(1)
                + torch.log(self.variance).sum()
                + self.variance.numel() * math.log(2 * math.pi)
            )
        return scores, error_map
