"""Dinomaly's loose reconstruction loss with hard-point mining."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from adtool.registry import MODELS


def point_distances(encoded: torch.Tensor, restored: torch.Tensor) -> torch.Tensor:
    """Per-position ``1 - cos`` over channels of two (B, C, h, w) maps -> (B, h, w)."""
    return 1 - F.cosine_similarity(encoded, restored, dim=1)


def hard_point_mask(distances: torch.Tensor, keep: float) -> torch.Tensor:
    """True at the hardest ``keep`` fraction of positions (of the whole batch): those whose
    distance reaches the ``k``-th largest, ``k = int(numel * keep)`` (at least one)."""
    k = max(1, int(distances.numel() * keep))
    threshold = torch.topk(distances.flatten(), k).values[-1]
    return distances >= threshold


def scale_gradient(x: torch.Tensor, where: torch.Tensor, factor: float) -> torch.Tensor:
    """``x`` in the forward pass; its gradient multiplied by ``factor`` where ``where``."""
    scaled = x.detach() + factor * (x - x.detach())
    return torch.where(where, scaled, x)


def global_cosine_distance(encoded: torch.Tensor, restored: torch.Tensor) -> torch.Tensor:
    """Mean over images of ``1 - cos`` between whole flattened (B, C, h, w) maps."""
    return (1 - F.cosine_similarity(encoded.flatten(1), restored.flatten(1), dim=1)).mean()


@MODELS.register_module()
class LooseCosineLoss(nn.Module):
    """Group-wise global cosine distance with hard mining (Dinomaly Eq. 4-5).

    Loose: each group (the mean of several layers) is compared as one vector per image,
    ``1 - cos(flatten(f_E), flatten(f_D))``, not position by position, and the groups'
    terms are averaged. Hard mining: the gradient through the positions whose own
    ``1 - cos`` is outside the hardest ``1 - p`` fraction of the batch is multiplied by
    ``factor``, so well-restored positions stop driving the decoder. ``p`` ramps
    linearly from 0 to ``p_final`` over ``warmup_iters`` iterations (official code).
    The encoder side carries no gradient.

    Args:
        p_final: Fraction of positions whose gradient is damped after the warm-up.
            Defaults to 0.9 (paper).
        factor: Gradient factor of the easy positions. Defaults to 0.1 (paper).
        warmup_iters: Iterations over which ``p`` rises to ``p_final``. Defaults to 1000.
    """

    def __init__(self, p_final: float = 0.9, factor: float = 0.1, warmup_iters: int = 1000):
        super().__init__()
        if not 0.0 <= p_final < 1.0:
            raise ValueError(f"LooseCosineLoss p_final must be in [0, 1), got {p_final}")
        self.p_final = p_final
        self.factor = factor
        self.warmup_iters = warmup_iters

    def p_at(self, iteration: int) -> float:
        """The damped fraction ``p`` at training iteration ``iteration`` (from 0)."""
        if self.warmup_iters <= 0:
            return self.p_final
        return min(self.p_final * iteration / self.warmup_iters, self.p_final)

    def forward(
        self,
        encoded: Sequence[torch.Tensor],
        restored: Sequence[torch.Tensor],
        iteration: int | None = None,
    ) -> torch.Tensor:
        """Mean over groups of the global cosine distance; (B, C, h, w) maps per group.

        ``iteration`` None uses ``p_final`` (the warm-up is over).
        """
        p = self.p_final if iteration is None else self.p_at(iteration)
        total = 0.0
        for enc, dec in zip(encoded, restored, strict=True):
            enc = enc.detach()
            with torch.no_grad():
                hard = hard_point_mask(point_distances(enc, dec), 1.0 - p)
            dec = scale_gradient(dec, ~hard.unsqueeze(1), self.factor)
            total = total + global_cosine_distance(enc, dec)
        return total / len(encoded)
