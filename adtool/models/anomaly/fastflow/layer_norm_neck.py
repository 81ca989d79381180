"""Per-level LayerNorm over (C, H, W) (FastFlow, Yu et al. 2021)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from adtool.registry import MODELS


@MODELS.register_module()
class LayerNormNeck(nn.Module):
    """Normalise each feature level over its whole (C, H, W) volume, with a learned affine.

    FastFlow puts a trainable LayerNorm between a CNN backbone and each level's flow so
    that the flow sees features on a comparable scale; the affine weight and bias are
    per element, so they also learn a per-position offset.

    Args:
        feature_shapes: (C, H, W) of each level. The model computes them from its
            backbone and input size; a config does not set them.
        elementwise_affine: Learn the per-element weight and bias. Defaults to True
            (official code).
    """

    def __init__(
        self, feature_shapes: Sequence[Sequence[int]], elementwise_affine: bool = True
    ) -> None:
        super().__init__()
        self.norms = nn.ModuleList(
            nn.LayerNorm(list(shape), elementwise_affine=elementwise_affine)
            for shape in feature_shapes
        )

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """(B, C_i, H_i, W_i) per level -> the same shapes, normalised per sample."""
        return [norm(feat) for norm, feat in zip(self.norms, features, strict=True)]
