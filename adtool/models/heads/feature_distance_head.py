"""Per-level teacher/student feature distances fused into one anomaly map (STFPM, RD)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from adtool.registry import MODELS

DISTANCES = ("l2_normalized", "cosine")
FUSIONS = ("product", "sum")


def feature_distance(
    teacher: torch.Tensor, student: torch.Tensor, distance: str = "l2_normalized"
) -> torch.Tensor:
    """Per-position distance of two (B, C, H, W) feature maps -> (B, H, W).

    ``'l2_normalized'``: squared L2 distance of the channel-normalised features,
    ``||t/|t| - s/|s|||^2`` (STFPM); ``'cosine'``: ``1 - cos(t, s)`` (Reverse
    Distillation). For non-zero features the first is twice the second.
    """
    if distance == "l2_normalized":
        diff = F.normalize(teacher, dim=1) - F.normalize(student, dim=1)
        return (diff * diff).sum(1)
    if distance == "cosine":
        return 1 - F.cosine_similarity(teacher, student, dim=1)
    raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")


@MODELS.register_module()
class FeatureDistanceHead(nn.Module):
    """Distance maps of matching teacher/student levels, upsampled and fused.

    Each level's per-position distance is bilinearly upsampled to the input size; the
    levels are multiplied (STFPM: a position is anomalous only where every level
    disagrees) or added (Reverse Distillation).

    Args:
        distance: ``'l2_normalized'`` (STFPM) or ``'cosine'`` (RD). Defaults to
            ``'l2_normalized'``.
        fusion: ``'product'`` (STFPM) or ``'sum'`` (RD). Defaults to ``'product'``.
    """

    def __init__(self, distance: str = "l2_normalized", fusion: str = "product") -> None:
        super().__init__()
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        self.distance = distance
        self.fusion = fusion

    def level_maps(
        self, teacher: Sequence[torch.Tensor], student: Sequence[torch.Tensor]
    ) -> list[torch.Tensor]:
        """One (B, H_i, W_i) distance map per level, at the level's resolution."""
        if len(teacher) != len(student):
            raise ValueError(f"{len(teacher)} teacher levels but {len(student)} student levels")
        return [feature_distance(t, s, self.distance) for t, s in zip(teacher, student)]

    def forward(
        self,
        teacher: Sequence[torch.Tensor],
        student: Sequence[torch.Tensor],
        size: Sequence[int],
    ) -> torch.Tensor:
        """Fused (B, H, W) anomaly map at ``size`` = (H, W)."""
        fused = None
        for level in self.level_maps(teacher, student):
            up = F.interpolate(
                level.unsqueeze(1), size=tuple(size), mode="bilinear", align_corners=False
            )
            if fused is None:
                fused = up
            elif self.fusion == "product":
                fused = fused * up
            else:
                fused = fused + up
        return fused.squeeze(1)
