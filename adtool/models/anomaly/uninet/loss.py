"""UniNet's loss: cosine + similarity-contrastive + margin (Wei et al., CVPR 2025, Sec. 3.3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from adtool.errors import ConfigError
from adtool.registry import MODELS


def position_similarity(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float
) -> torch.Tensor:
    """(B, N, N) log-softmax over teacher positions of ``cos(s_i, t_j) / temperature``.

    ``student`` and ``teacher`` are (B, C, H, W) with N = H * W; row ``i`` is student
    position ``i`` against every teacher position.
    """
    s = F.normalize(student.flatten(2).transpose(1, 2), dim=-1)  # (B, N, C)
    t = F.normalize(teacher.flatten(2).transpose(1, 2), dim=-1)
    return torch.log_softmax(s @ t.transpose(1, 2) / temperature, dim=-1)


@MODELS.register_module()
class UniNetLoss(nn.Module):
    """Per (student, teacher) pair of feature maps, summed over pairs:

    ``lambda * mean_i(1 - cos(s_i, t_i))``
    ``+ (1 - lambda) * mean_i(-log p_ii)``  (similarity contrastive loss)
    ``+ mean_i(relu(margin - p_ii))``  (margin loss on normal positions),

    with ``p_ij = exp(cos(s_i, t_j) / T) / sum_k exp(cos(s_i, t_k) / T)`` over the
    image's positions: a student position must match the teacher at the same position
    better than at every other one. Training data are normal, so every position is
    normal (the paper's abnormal-margin term needs labelled anomalies and is not used).

    Args:
        temperature: ``T``. Defaults to 0.1 (the paper; the official code's
            one-class MVTec runs pass 2, its multi-class and supervised ones 0.1).
        lambda_weight: Weight of the cosine term against the contrastive one.
            Defaults to 0.7 (official code).
        margin: Margin of the margin loss. Defaults to 1.0 (official code).
    """

    def __init__(
        self, temperature: float = 0.1, lambda_weight: float = 0.7, margin: float = 1.0
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ConfigError(f"UniNetLoss: temperature must be > 0, got {temperature}")
        if not 0.0 <= lambda_weight <= 1.0:
            raise ConfigError(f"UniNetLoss: lambda_weight must be in [0, 1], got {lambda_weight}")
        self.temperature = float(temperature)
        self.lambda_weight = float(lambda_weight)
        self.margin = float(margin)

    def pair_terms(self, student: torch.Tensor, teacher: torch.Tensor) -> dict[str, torch.Tensor]:
        """The three terms (scalars) for one pair of (B, C, H, W) maps."""
        cosine = (1 - F.cosine_similarity(student, teacher, dim=1)).mean()
        log_p = position_similarity(student, teacher, self.temperature)
        log_diag = torch.diagonal(log_p, dim1=1, dim2=2)  # (B, N)
        contrastive = -log_diag.mean()
        margin = F.relu(self.margin - log_diag.exp()).mean()
        return dict(cosine=cosine, contrastive=contrastive, margin=margin)

    def forward(
        self, students: Sequence[torch.Tensor], teachers: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        if len(students) != len(teachers):
            raise ValueError(f"{len(students)} student maps for {len(teachers)} teacher maps")
        total = students[0].new_zeros(())
        for s, t in zip(students, teachers):
            terms = self.pair_terms(s, t)
            total = (
                total
                + self.lambda_weight * terms["cosine"]
                + (1 - self.lambda_weight) * terms["contrastive"]
                + terms["margin"]
            )
        return total
