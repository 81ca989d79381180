"""CFA's soft-boundary loss: attract to the K nearest centroids, repel the next J."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from adtool.errors import ConfigError
from adtool.registry import MODELS


@MODELS.register_module()
class CFALoss(nn.Module):
    """``L = (L_att + L_rep) / nu`` over the squared distances of descriptors to centroids.

    For each descriptor, with ``d_1 <= d_2 <= ...`` its squared distances to the memory
    bank's centroids and ``r`` the hypersphere radius:

    * ``L_att = mean_{k <= K} max(0, d_k - r^2)``: the K nearest centroids' hyperspheres
      should contain it;
    * ``L_rep = mean_{K < j <= K + J} max(0, r^2 - d_j - alpha)``: the next J (hard
      negatives) should stay outside by a margin ``alpha``.

    The radius is an ``nn.Parameter`` trained with the descriptor, starting at ``radius``
    (the official code; anomalib keeps it fixed: ``learn_radius=False``).

    Args:
        num_nearest: K. Defaults to 3 (the paper).
        num_hard_negatives: J. Defaults to 3 (the paper).
        radius: Initial radius r. Defaults to 1e-5 (the official code).
        learn_radius: Train r. Defaults to True (the official code).
        alpha: Margin of the repulsion. Defaults to 0.1 (the official code).
        nu: The loss is divided by it. Defaults to 1e-3 (the official code).
    """

    def __init__(
        self,
        num_nearest: int = 3,
        num_hard_negatives: int = 3,
        radius: float = 1e-5,
        learn_radius: bool = True,
        alpha: float = 0.1,
        nu: float = 1e-3,
    ) -> None:
        super().__init__()
        if num_nearest < 1 or num_hard_negatives < 0 or nu <= 0:
            raise ConfigError(
                f"CFALoss needs num_nearest >= 1, num_hard_negatives >= 0 and nu > 0, got "
                f"{num_nearest}, {num_hard_negatives}, {nu}; fix model.loss"
            )
        self.num_nearest = num_nearest
        self.num_hard_negatives = num_hard_negatives
        self.alpha = alpha
        self.nu = nu
        self.radius = nn.Parameter(torch.tensor([float(radius)]), requires_grad=learn_radius)

    def forward(self, distances: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, P, M) squared distances of P descriptors to M centroids -> the two terms."""
        k, j = self.num_nearest, self.num_hard_negatives
        if distances.shape[-1] < k + j:
            raise ConfigError(
                f"CFALoss needs at least K + J = {k + j} centroids, the memory bank has "
                f"{distances.shape[-1]}; lower model.gamma_c or use larger images"
            )
        nearest = distances.topk(k + j, dim=-1, largest=False).values
        r2 = self.radius.square()
        attract = F.relu(nearest[..., :k] - r2).mean()
        losses = dict(loss_att=attract / self.nu)
        if j:
            repel = F.relu(r2 - nearest[..., k:] - self.alpha).mean()
            losses["loss_rep"] = repel / self.nu
        return losses
