"""Gaussian kernel density estimation with Scott's bandwidth (DFKDE).

The estimate is ``p(x) = 1/N sum_i N(x; x_i, H)`` with the bandwidth matrix ``H`` the
sample covariance times Scott's factor squared, ``N ** (-2 / (D + 4))``: the rule
``scipy.stats.gaussian_kde`` and anomalib's ``GaussianKDE`` use by default. The fit
whitens the samples once by the Cholesky factor ``L`` of ``H^-1`` (``L L^T = H^-1``), so
scoring is one Euclidean distance matrix and a ``logsumexp``: vectorised over queries and
samples, and stable where the density itself would underflow.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch


class KDEFit(NamedTuple):
    """A fitted Gaussian KDE (float64).

    Attributes:
        whitening: (D, D) lower-triangular ``L`` with ``L L^T = H^-1``.
        points: (N, D) training samples times ``L``.
        log_norm: () log of each kernel's normalising constant,
            ``log det L - D / 2 log(2 pi)``.
    """

    whitening: torch.Tensor
    points: torch.Tensor
    log_norm: torch.Tensor


def scott_factor(num_samples: int, dim: int) -> float:
    """Scott's bandwidth factor ``N ** (-1 / (D + 4))``."""
    return float(num_samples) ** (-1.0 / (dim + 4))


def fit_gaussian_kde(samples: torch.Tensor) -> KDEFit:
    """Fit a Gaussian KDE with Scott's bandwidth to (N, D) samples, in float64.

    Args:
        samples: (N, D) samples, N > D so that their covariance can be inverted.

    Returns:
        A :class:`KDEFit`.

    Raises:
        ValueError: Too few samples, or samples whose covariance is singular (they lie
            in a lower-dimensional subspace).
    """
    if samples.dim() != 2 or samples.shape[0] <= samples.shape[1]:
        raise ValueError(
            f"a Gaussian KDE in {samples.shape[-1]} dims needs more samples than dims, got "
            f"shape {tuple(samples.shape)}"
        )
    data = samples.to(torch.float64)
    num, dim = data.shape
    bandwidth = torch.cov(data.T).reshape(dim, dim) * scott_factor(num, dim) ** 2
    try:
        whitening = torch.linalg.cholesky(torch.linalg.inv(bandwidth))
    except torch.linalg.LinAlgError:
        raise ValueError(
            f"the covariance of the {num} samples is singular (they span fewer than {dim} "
            "dimensions)"
        ) from None
    log_norm = torch.log(torch.diagonal(whitening)).sum() - 0.5 * dim * math.log(2 * math.pi)
    return KDEFit(whitening, data @ whitening, log_norm)


def kde_log_density(
    queries: torch.Tensor,
    whitening: torch.Tensor,
    points: torch.Tensor,
    log_norm: torch.Tensor,
    chunk_size: int = 256,
) -> torch.Tensor:
    """Log density of (Q, D) queries under a fitted KDE, in float64.

    ``log p(x) = logsumexp_i(-|x L - x_i L|^2 / 2) - log N + log_norm``. Queries go in
    chunks so that one (chunk x N) distance block stays small (40 000 samples: 80 MB).

    Args:
        queries: (Q, D) points.
        whitening: (D, D) ``KDEFit.whitening``.
        points: (N, D) ``KDEFit.points``.
        log_norm: () ``KDEFit.log_norm``.
        chunk_size: Queries per distance block. Defaults to 256.

    Returns:
        (Q,) float64 log densities.
    """
    whitening = whitening.to(torch.float64)
    points = points.to(torch.float64)
    whitened = queries.to(torch.float64) @ whitening
    out = []
    if torch.jit.is_tracing() or torch.compiler.is_exporting():
        blocks = [whitened]  # an ONNX export: a traced slice would fix the batch size
    else:
        blocks = (whitened[s : s + chunk_size] for s in range(0, whitened.shape[0], chunk_size))
    for block in blocks:
        sq = torch.cdist(block, points).square()
        out.append(torch.logsumexp(-0.5 * sq, dim=1))
    # One block (an export): no Concat, which OpenVINO 2026.4 cannot shape after ReduceLogSumExp.
    log_sum = out[0] if len(out) == 1 else torch.cat(out) if out else whitened.new_zeros(0)
    return log_sum - math.log(points.shape[0]) + log_norm.to(torch.float64)
