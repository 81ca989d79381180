"""Greedy k-center coreset selection (PatchCore, Roth et al. 2022, Sec. 3.2)."""

from __future__ import annotations

import torch


def random_projection(features: torch.Tensor, dim: int | None, seed: int = 0) -> torch.Tensor:
    """Johnson-Lindenstrauss Gaussian projection of (N, D) features to (N, dim).

    Returns the features unchanged when ``dim`` is None or not smaller than D.
    """
    if dim is None or dim >= features.shape[1]:
        return features
    gen = torch.Generator().manual_seed(seed)
    matrix = torch.randn(features.shape[1], dim, generator=gen) / dim**0.5
    return features @ matrix.to(features.device, features.dtype)


def greedy_coreset(
    features: torch.Tensor, n: int, projection_dim: int | None = 128, seed: int = 0
) -> torch.Tensor:
    """Indices of ``n`` rows chosen by greedy k-center selection.

    Each step adds the point farthest from everything chosen so far, so the largest
    distance from any point to its nearest chosen point (the coverage radius) shrinks
    as fast as the greedy 2-approximation allows. Distances are computed in a random
    projection to ``projection_dim`` dims, as in the paper.

    Args:
        features: (N, D) float tensor.
        n: Number of rows to select (clipped to N).
        projection_dim: Projection size; None keeps D. Defaults to 128.
        seed: Seed of the projection and of the first point. Defaults to 0.

    Returns:
        (n,) long tensor of distinct row indices, in selection order.
    """
    num = features.shape[0]
    n = max(1, min(int(n), num))
    x = random_projection(features.float(), projection_dim, seed).contiguous()
    sq_norms = (x * x).sum(1)
    gen = torch.Generator().manual_seed(seed)
    first = int(torch.randint(num, (1,), generator=gen))
    selected = torch.empty(n, dtype=torch.long)
    selected[0] = first
    # Squared distances order the same way as distances; skip the sqrt.
    min_dist = sq_norms - 2 * (x @ x[first]) + sq_norms[first]
    dots = torch.empty_like(min_dist)
    dist = torch.empty_like(min_dist)
    for i in range(1, n):
        idx = int(torch.argmax(min_dist))
        selected[i] = idx
        torch.mv(x, x[idx], out=dots)
        torch.add(sq_norms, dots, alpha=-2, out=dist)
        dist += sq_norms[idx]
        torch.minimum(min_dist, dist, out=min_dist)
    return selected


def coverage_radius(features: torch.Tensor, selected: torch.Tensor) -> float:
    """Largest distance from any row of ``features`` to its nearest selected row."""
    from adtool.models.components.knn import nearest_neighbors

    dist, _ = nearest_neighbors(features, features[selected], k=1)
    return float(dist.max())
