"""UniNet's weighted decision mechanism (Wei et al., CVPR 2025, Sec. 3.4)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def decision_weights(level_maps: Sequence[torch.Tensor], alpha: float, beta: float) -> torch.Tensor:
    """(B,) fraction of the map that scores each image.

    Per image: the maximum ``m_j`` of each of the ``n`` distance maps; ``P`` = the maxima
    whose ``softmax(m)_j`` exceeds the mean probability ``1 / n``; weight
    ``max(alpha * mean(P), beta)``. (All maxima equal: every level counts.)
    """
    maxima = torch.stack([m.flatten(1).amax(1) for m in level_maps], dim=1)  # (B, n)
    probs = torch.softmax(maxima, dim=1)
    chosen = probs > probs.mean(dim=1, keepdim=True)
    # (a logical or, not torch.where: ONNX Runtime has no Where kernel for bool tensors)
    chosen = chosen | ~chosen.any(dim=1, keepdim=True)
    mean_chosen = (maxima * chosen).sum(1) / chosen.sum(1)
    return torch.clamp(alpha * mean_chosen, min=beta)


def fuse_maps(level_maps: Sequence[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
    """Sum of the (B, h_j, w_j) maps, each bilinearly resized (corners aligned) to ``size``."""
    size = tuple(int(s) for s in size)
    return sum(
        F.interpolate(m.unsqueeze(1), size=size, mode="bilinear", align_corners=True).squeeze(1)
        for m in level_maps
    )


def weighted_score(maps: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(B,) scores of (B, H, W) maps: the official code's top-k rule.

    With ``M`` an image's map and ``k = max(1, floor(H * W * weight))``, the score is the
    mean of the ``k`` largest values of ``max(exp(M - max M)) - exp(M - max M)``, i.e. of
    ``1 - exp(M - max M)``: it grows with how far the map's peak stands above the
    ``k`` least anomalous positions.
    """
    b = maps.shape[0]
    flat = maps.reshape(b, -1)
    gap = 1 - torch.exp(flat - flat.amax(1, keepdim=True))
    ks = torch.clamp((flat.shape[1] * weights).floor().long(), min=1)
    ordered = gap.sort(dim=1, descending=True).values
    ranks = torch.arange(flat.shape[1], device=maps.device)
    keep = ranks[None, :] < ks[:, None]
    return (ordered * keep).sum(1) / ks
