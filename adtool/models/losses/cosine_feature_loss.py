"""Cosine distance between teacher and student (or decoder) features, summed over levels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from adtool.errors import ConfigError
from adtool.registry import MODELS


@MODELS.register_module()
class CosineFeatureLoss(nn.Module):
    """``loss_weight * sum_l w_l * mean(1 - cos(t_l, s_l))``.

    Per position (``flatten=False``): the cosine runs over channels at every position
    and is averaged over positions and images. That is STFPM's loss (Wang et al. 2021,
    Eq. 1-2: ``1/2 ||t/|t| - s/|s|||^2`` averaged over positions equals ``1 - cos``) and
    the per-position form of Reverse Distillation's Eq. 2.

    Flattened (``flatten=True``): each image's whole (C, H, W) level is one vector, as
    Reverse Distillation's official code computes it (``view(B, -1)``), so one cosine per
    image and level; it weighs positions by their feature norms.

    Args:
        flatten: One cosine per image and level (True) or per position (False).
            Defaults to False.
        level_weights: Weight of each level. Defaults to None (1 for every level).
        loss_weight: Overall factor (2.0 turns STFPM's paper loss into its official
            code's, which leaves out the 1/2). Defaults to 1.0.
        reduction: Over the images of a batch: ``'mean'`` (STFPM's and Reverse
            Distillation's official code) or ``'sum'`` (anomalib's STFPM loss,
            ``0.5 / (h w) * sum((t - s)^2)`` over the whole batch: the gradient grows with
            the batch size, which is what makes its STFPM converge in few epochs).
            Defaults to 'mean'.
    """

    def __init__(
        self,
        flatten: bool = False,
        level_weights: Sequence[float] | None = None,
        loss_weight: float = 1.0,
        reduction: Literal["mean", "sum"] = "mean",
    ) -> None:
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise ConfigError(
                f"CosineFeatureLoss reduction={reduction!r} is not a choice; use 'mean' or 'sum'"
            )
        self.reduction = reduction
        self.flatten = flatten
        self.level_weights = None if level_weights is None else [float(w) for w in level_weights]
        self.loss_weight = float(loss_weight)

    def forward(
        self, teacher: Sequence[torch.Tensor], student: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """Teacher and student feature lists (same shapes per level) -> scalar loss."""
        if len(teacher) != len(student):
            raise ValueError(f"{len(teacher)} teacher levels but {len(student)} student levels")
        weights = self.level_weights or [1.0] * len(teacher)
        if len(weights) != len(teacher):
            raise ConfigError(
                f"CosineFeatureLoss: {len(weights)} level_weights for {len(teacher)} levels; "
                "give one weight per backbone level"
            )
        total = teacher[0].new_zeros(())
        for w, t, s in zip(weights, teacher, student):
            if self.flatten:
                cos = F.cosine_similarity(t.flatten(1), s.flatten(1), dim=1)
            else:
                cos = F.cosine_similarity(t, s, dim=1)
            per_image = (1 - cos).reshape(len(cos), -1).mean(1)
            total = total + w * (per_image.sum() if self.reduction == "sum" else per_image.mean())
        return self.loss_weight * total
