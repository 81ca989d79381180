"""PCA + scaling + Gaussian KDE of whole-image feature vectors, calibrated (DFKDE)."""

from __future__ import annotations

import torch
from torch import nn

from adtool.errors import ConfigError, DataError
from adtool.models.components.kde import fit_gaussian_kde, kde_log_density
from adtool.models.components.pca import fit_pca, pca_transform
from adtool.registry import MODELS

SCALINGS = ("scale", "norm")
# anomalib's fixed logistic calibration of the log density: 1 / (1 + exp(0.05 (s - 12))).
LOGISTIC_SLOPE = 0.05
LOGISTIC_CENTRE = 12.0


def calibrate(log_density: torch.Tensor) -> torch.Tensor:
    """Log densities -> anomaly probabilities by anomalib's logistic, ``sigmoid(-0.05 (s - 12))``.

    Monotone decreasing: the rarer a feature vector, the closer to 1.
    """
    return torch.sigmoid(-LOGISTIC_SLOPE * (log_density - LOGISTIC_CENTRE))


@MODELS.register_module()
class KDEHead(nn.Module):
    """anomalib's ``KDEClassifier``: PCA, scaling, Gaussian KDE, logistic calibration.

    Fit on (N, D) training vectors (a random subset of ``max_training_points`` when there
    are more): PCA to ``n_components`` dims, then ``'scale'`` divides every projected
    vector by the largest training norm (kept as ``max_length``) or ``'norm'`` divides
    each by its own norm, then a Gaussian KDE with Scott's bandwidth. An image scores
    ``calibrate(log p(x))``, in (0, 1).

    Buffers (saved in the checkpoint, float32): ``pca_mean`` (D,), ``pca_components``
    (K, D), ``max_length`` (), ``kde_whitening`` (K, K), ``kde_points`` (N, K),
    ``kde_log_norm`` ().

    Args:
        n_components: PCA dims. Defaults to 16 (anomalib).
        feature_scaling: ``'scale'`` or ``'norm'``. Defaults to ``'scale'`` (anomalib).
        max_training_points: Most training vectors the KDE keeps. Defaults to 40000
            (anomalib).
        seed: Seed of the random subset. Defaults to 0.
    """

    def __init__(
        self,
        n_components: int = 16,
        feature_scaling: str = "scale",
        max_training_points: int = 40000,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if feature_scaling not in SCALINGS:
            raise ConfigError(
                f"KDEHead feature_scaling={feature_scaling!r} is not one of {SCALINGS}; set "
                "model.head.feature_scaling to 'scale' or 'norm'"
            )
        if n_components < 1 or max_training_points <= n_components:
            raise ConfigError(
                f"KDEHead needs 1 <= n_components < max_training_points, got {n_components} "
                f"and {max_training_points}; fix model.head"
            )
        self.n_components = n_components
        self.feature_scaling = feature_scaling
        self.max_training_points = max_training_points
        self.seed = seed
        for name in ("pca_mean", "max_length", "kde_log_norm"):
            self.register_buffer(name, torch.empty(0))
        for name in ("pca_components", "kde_whitening", "kde_points"):
            self.register_buffer(name, torch.empty(0, 0))

    @property
    def is_fitted(self) -> bool:
        return self.kde_points.numel() > 0

    def _scale(self, z: torch.Tensor) -> torch.Tensor:
        if self.feature_scaling == "norm":
            return z / torch.linalg.vector_norm(z, dim=1, keepdim=True).clamp_min(1e-12)
        return z / self.max_length

    def fit(self, features: torch.Tensor) -> None:
        """Fit PCA, scale and KDE to (N, D) training feature vectors."""
        n = features.shape[0]
        if n <= self.n_components:
            raise DataError(
                f"DFKDE needs more training images than its {self.n_components} PCA "
                f"components, got {n}; add normal images or lower model.head.n_components"
            )
        if n > self.max_training_points:
            generator = torch.Generator().manual_seed(self.seed)
            keep = torch.randperm(n, generator=generator)[: self.max_training_points]
            features = features[keep.sort().values]
        pca = fit_pca(features.float(), self.n_components)
        z = pca_transform(features.float(), pca.mean, pca.components)
        self.pca_mean, self.pca_components = pca.mean, pca.components
        self.max_length = torch.linalg.vector_norm(z, dim=1).max().clamp_min(1e-12)
        try:
            kde = fit_gaussian_kde(self._scale(z))
        except ValueError as e:
            raise DataError(
                f"DFKDE cannot fit its density: {e}; the training images are (nearly) "
                "identical, add varied normal images or lower model.head.n_components"
            ) from None
        self.kde_whitening = kde.whitening.float()
        self.kde_points = kde.points.float()
        self.kde_log_norm = kde.log_norm.float()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The sizes are only known after fitting: take the checkpoint's shapes.
        for name, _ in self.named_buffers(recurse=False):
            key = prefix + name
            if key in state_dict:
                setattr(self, name, torch.empty_like(state_dict[key]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def log_density(self, features: torch.Tensor) -> torch.Tensor:
        """(B, D) feature vectors -> (B,) float64 log densities under the fitted KDE."""
        if not self.is_fitted:
            raise RuntimeError("KDEHead has no density: fit the model first")
        if features.shape[1] != self.pca_mean.numel():
            raise DataError(
                f"DFKDE was fitted on {self.pca_mean.numel()}-d features but got "
                f"{features.shape[1]}-d ones; test with the training backbone and levels"
            )
        z = self._scale(pca_transform(features.float(), self.pca_mean, self.pca_components))
        return kde_log_density(z, self.kde_whitening, self.kde_points, self.kde_log_norm)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, D) feature vectors -> (B,) anomaly probabilities (float32)."""
        return calibrate(self.log_density(features)).float()
