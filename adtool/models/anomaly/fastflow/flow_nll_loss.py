"""Negative log-likelihood of a normalising flow under a standard normal (FastFlow)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from adtool.errors import ConfigError
from adtool.models.components.flows import gaussian_log_likelihood
from adtool.registry import MODELS


@MODELS.register_module()
class FlowNLLLoss(nn.Module):
    """``-log p(x)`` up to a constant: ``0.5 * ||z||^2 - log|det J|`` per sample.

    Per level, the sum over every (C, H, W) element of ``0.5 * z^2`` minus the level's
    log-determinant, averaged over the batch; then the levels are summed, as the official
    FastFlow code and anomalib do (``level_reduction='sum'``). The constant
    ``0.5 * D * log(2 pi)`` is left out: it has no gradient.

    Args:
        level_reduction: ``'sum'`` (official code, anomalib) or ``'mean'`` over the
            levels. Defaults to ``'sum'``.
    """

    def __init__(self, level_reduction: str = "sum") -> None:
        super().__init__()
        if level_reduction not in ("sum", "mean"):
            raise ConfigError(
                f"FlowNLLLoss level_reduction must be 'sum' or 'mean', got {level_reduction!r}"
            )
        self.level_reduction = level_reduction

    def forward(
        self, latents: Sequence[torch.Tensor], log_jac_dets: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        """Latents (B, C, H, W) and log-determinants (B,) per level -> scalar loss."""
        per_level = torch.stack(
            [
                -gaussian_log_likelihood(z, log_det, constant=False).mean()
                for z, log_det in zip(latents, log_jac_dets, strict=True)
            ]
        )
        return per_level.sum() if self.level_reduction == "sum" else per_level.mean()
