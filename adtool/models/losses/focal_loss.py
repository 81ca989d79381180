"""Focal loss for segmentation heads (DRAEM's discriminative network and its successors)."""

from __future__ import annotations

from typing import Literal

import torch
from kornia.losses import focal_loss
from torchvision.ops import sigmoid_focal_loss

from adtool.registry import MODELS


@MODELS.register_module()
class FocalLoss(torch.nn.Module):
    """Focal loss (Lin et al., ICCV 2017): ``-alpha (1 - p_t)^gamma log p_t``, averaged.

    ``use_sigmoid=False``: logits (B, C, H, W) and integer targets (B, H, W), softmax over
    classes (kornia's ``focal_loss``), the form DRAEM uses with C = 2. ``use_sigmoid=True``:
    one logit per pixel (B, 1, H, W) or (B, H, W) and 0/1 targets of that shape
    (torchvision's ``sigmoid_focal_loss``).

    Args:
        alpha: Class balance weight; None turns it off. Defaults to None (DRAEM's code).
        gamma: Focusing exponent. Defaults to 2.0.
        use_sigmoid: Binary per-pixel logits instead of a softmax over classes.
            Defaults to False.
        reduction: ``'mean'``, ``'sum'`` or ``'none'``. Defaults to ``'mean'``.
        loss_weight: Factor on the loss. Defaults to 1.0.
    """

    def __init__(
        self,
        alpha: float | None = None,
        gamma: float = 2.0,
        use_sigmoid: bool = False,
        reduction: Literal["mean", "sum", "none"] = "mean",
        loss_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.alpha = alpha
        self.gamma = float(gamma)
        self.use_sigmoid = use_sigmoid
        self.reduction = reduction
        self.loss_weight = float(loss_weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.use_sigmoid:
            # torchvision switches alpha off with a negative value.
            alpha = -1.0 if self.alpha is None else float(self.alpha)
            loss = sigmoid_focal_loss(
                logits,
                target.to(logits.dtype),
                alpha=alpha,
                gamma=self.gamma,
                reduction=self.reduction,
            )
        else:
            # kornia keeps the class axis (zero but for the target class) and its 'mean'
            # would also average over it; sum it out to get one loss per pixel.
            loss = focal_loss(
                logits, target.long(), alpha=self.alpha, gamma=self.gamma, reduction="none"
            ).sum(1)
            if self.reduction == "mean":
                loss = loss.mean()
            elif self.reduction == "sum":
                loss = loss.sum()
        return self.loss_weight * loss
