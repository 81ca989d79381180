"""Multivariate Gaussians fitted per position, and Mahalanobis distances to them.

Shared by models that describe normal features with a Gaussian: PaDiM fits one per
patch position, a single image-level Gaussian is the case of one position.
"""

from __future__ import annotations

import torch

DEFAULT_MEMORY_MB = 256


def _positions_per_chunk(n: int, d: int, memory_mb: int) -> int:
    """Positions whose float64 work (samples, centred copy, cov, inverse) fits the budget."""
    per_position = 8 * (2 * n * d + 3 * d * d)
    return max(1, int(memory_mb) * 2**20 // per_position)


def fit_gaussian(
    samples: torch.Tensor,
    reg: float = 0.01,
    memory_mb: int = DEFAULT_MEMORY_MB,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and inverse covariance of a Gaussian at each position.

    The covariance is the unbiased sample covariance (``N - 1``, as ``np.cov``) plus
    ``reg * I``, which keeps it invertible when there are fewer samples than dimensions.
    Positions are processed in chunks in float64 so that the peak extra memory is about
    ``memory_mb`` whatever the number of positions; only the float32 results are kept.

    Args:
        samples: (N, P, D) features of N samples at P positions, or (N, D) for a single
            Gaussian. May be a non-contiguous view; each chunk is copied on its own.
        reg: Added to the covariance diagonal. Defaults to 0.01 (PaDiM).
        memory_mb: Bound on the float64 work of one chunk, in MiB. Defaults to 256.

    Returns:
        ``(mean, inv_cov)``: float32 (P, D) and (P, D, D), or (D,) and (D, D) for 2-d
        input.

    Raises:
        ValueError: With fewer than two samples (no covariance).
    """
    single = samples.dim() == 2
    if single:
        samples = samples.unsqueeze(1)
    n, p, d = samples.shape
    if n < 2:
        raise ValueError(f"a covariance needs at least 2 samples, got {n}")
    mean = torch.empty(p, d, dtype=torch.float32, device=samples.device)
    inv_cov = torch.empty(p, d, d, dtype=torch.float32, device=samples.device)
    eye = reg * torch.eye(d, dtype=torch.float64, device=samples.device)
    step = _positions_per_chunk(n, d, memory_mb)
    for start in range(0, p, step):
        x = samples[:, start : start + step].to(torch.float64)
        mu = x.mean(0)
        x = x - mu
        cov = torch.einsum("npd,npe->pde", x, x) / (n - 1) + eye
        # cov + reg*I is symmetric positive definite: a Cholesky inverse is exact and stable.
        inv = torch.cholesky_inverse(torch.linalg.cholesky(cov))
        mean[start : start + step] = mu
        inv_cov[start : start + step] = inv
    if single:
        return mean[0], inv_cov[0]
    return mean, inv_cov


def mahalanobis(
    x: torch.Tensor,
    mean: torch.Tensor,
    inv_cov: torch.Tensor,
    squared: bool = False,
) -> torch.Tensor:
    """Mahalanobis distance of each feature to the Gaussian of its position.

    Args:
        x: (..., P, D) features, e.g. (B, P, D) for a batch; (..., D) with a single
            Gaussian.
        mean: (P, D) means, or (D,).
        inv_cov: (P, D, D) inverse covariances, or (D, D).
        squared: Return the squared distance. Defaults to False.

    Returns:
        (..., P) distances (or (...) for a single Gaussian).
    """
    delta = (x - mean).to(inv_cov.dtype)
    if mean.dim() == 1:
        proj = delta @ inv_cov
    else:
        # One batched matrix product per position: (..., P, D) x (P, D, D).
        proj = torch.einsum("...pd,pde->...pe", delta, inv_cov)
    dist = (proj * delta).sum(-1).clamp_min(0)
    return dist if squared else dist.sqrt()
