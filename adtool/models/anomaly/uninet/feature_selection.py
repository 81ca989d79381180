"""Domain-related feature selection (UniNet, Wei et al., CVPR 2025, Sec. 3.2)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class DomainFeatureSelection(nn.Module):
    """Weight the student's features by priors taken from the teacher's.

    For a student level ``s`` and its teacher level ``t`` (B, C, H, W), per image and
    channel:

    ``w = softmax_{positions}(t)``  (where in the image this channel responds),
    ``g = mean_{positions}(t)``  (how much it responds at all),
    ``theta = min(sigmoid(p) + 0.5, 1)``  (a learnt per-channel floor, p starts at 0),

    and the selected student feature is ``s * w * (theta + g)``; the loss then compares
    it with ``t``. One ``p`` per level (the official code's ``theta1..3``), shared by the
    two student halves of that level.

    Args:
        channels: Channels of each level, fine to coarse.
    """

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        self.thetas = nn.ParameterList(nn.Parameter(torch.zeros(1, c, 1, 1)) for c in channels)

    def theta(self, level: int) -> torch.Tensor:
        """(1, C, 1, 1) floor of ``level``: ``min(sigmoid(p) + 0.5, 1)``."""
        return torch.clamp(torch.sigmoid(self.thetas[level]) + 0.5, max=1.0)

    @staticmethod
    def priors(teacher: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Spatial softmax weights (B, C, H, W) and channel means (B, C, 1, 1) of ``teacher``."""
        b, c, h, w = teacher.shape
        weights = torch.softmax(teacher.reshape(b, c, h * w), dim=-1).reshape(b, c, h, w)
        return weights, teacher.mean(dim=(-2, -1), keepdim=True)

    def forward(
        self, students: Sequence[torch.Tensor], teachers: Sequence[torch.Tensor]
    ) -> list[torch.Tensor]:
        """Selected student features, one per (student, teacher) pair.

        ``students`` and ``teachers`` hold ``k * L`` maps for the ``L`` levels (UniNet:
        the ``L`` source-teacher pairs, then the ``L`` target-teacher pairs); pair ``i``
        uses level ``i % L``'s floor.
        """
        n_levels = len(self.thetas)
        if len(students) != len(teachers) or len(students) % n_levels:
            raise ValueError(
                f"expected a multiple of {n_levels} (student, teacher) pairs, "
                f"got {len(students)} students and {len(teachers)} teachers"
            )
        selected = []
        for i, (s, t) in enumerate(zip(students, teachers)):
            weights, mean = self.priors(t)
            selected.append(s * weights * (self.theta(i % n_levels) + mean))
        return selected
