"""Principal component analysis by SVD (DFM, DFKDE)."""

from __future__ import annotations

from typing import NamedTuple

import torch


class PCAFit(NamedTuple):
    """A fitted PCA.

    Attributes:
        mean: (D,) training mean.
        components: (K, D) orthonormal principal directions, largest variance first.
        explained_variance: (K,) variance of the training data along each direction
            (unbiased, ``N - 1``, as sklearn).
    """

    mean: torch.Tensor
    components: torch.Tensor
    explained_variance: torch.Tensor


def num_components(variance_ratio: torch.Tensor, n_components: int | float) -> int:
    """Components to keep: a count, or the fewest explaining a fraction of the variance.

    A float in (0, 1) keeps the fewest leading components whose cumulative ratio exceeds
    it (sklearn's rule); an int keeps that many.
    """
    if isinstance(n_components, float) and 0 < n_components < 1:
        cumulative = torch.cumsum(variance_ratio, 0)
        target = torch.tensor(n_components, dtype=cumulative.dtype)
        k = int(torch.searchsorted(cumulative, target, right=True)) + 1
        return min(k, variance_ratio.numel())
    if isinstance(n_components, int) and not isinstance(n_components, bool):
        if not 1 <= n_components <= variance_ratio.numel():
            raise ValueError(
                f"n_components={n_components} must be between 1 and "
                f"{variance_ratio.numel()} (min of samples and dimensions)"
            )
        return n_components
    raise ValueError(
        f"n_components must be a fraction in (0, 1) or a positive int, got {n_components!r}"
    )


def fit_pca(x: torch.Tensor, n_components: int | float = 0.97) -> PCAFit:
    """Principal components of (N, D) samples, computed in float64.

    The thin SVD of the centred data costs O(min(N, D)^2 max(N, D)), so a few hundred
    images with thousands of feature dims fit in well under a second. Signs are fixed
    so that each component's largest-magnitude entry is positive (runs are repeatable).

    Args:
        x: (N, D) samples.
        n_components: Fraction of variance to keep (float in (0, 1)) or number of
            components (int). Defaults to 0.97.

    Returns:
        A :class:`PCAFit` in float32.
    """
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"fit_pca needs (N, D) samples with N >= 2, got shape {tuple(x.shape)}")
    data = x.to(torch.float64)
    mean = data.mean(0)
    _, s, vh = torch.linalg.svd(data - mean, full_matrices=False)
    variance = s.square() / (x.shape[0] - 1)
    total = variance.sum()
    ratio = variance / total if total > 0 else torch.ones_like(variance) / variance.numel()
    k = num_components(ratio, n_components)
    components = vh[:k]
    rows = torch.arange(k)
    signs = torch.sign(components[rows, components.abs().argmax(1)])
    components = components * signs.unsqueeze(1)
    return PCAFit(mean.float(), components.float(), variance[:k].float())


def pca_transform(x: torch.Tensor, mean: torch.Tensor, components: torch.Tensor) -> torch.Tensor:
    """(N, D) samples -> (N, K) coordinates along the principal components."""
    return (x - mean) @ components.T


def pca_inverse_transform(
    z: torch.Tensor, mean: torch.Tensor, components: torch.Tensor
) -> torch.Tensor:
    """(N, K) coordinates -> (N, D) points in the feature space (the projections)."""
    return z @ components + mean
