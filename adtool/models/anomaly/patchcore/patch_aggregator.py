"""Locally aware patch features (PatchCore, Roth et al. 2022, Sec. 3.1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from adtool.registry import MODELS


def adaptive_channel_pool(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Average-pool the channel axis of (B, C, H, W) to ``dim`` channels."""
    b, c, h, w = x.shape
    if c == dim:
        return x
    flat = x.permute(0, 2, 3, 1).reshape(-1, 1, c)
    pooled = F.adaptive_avg_pool1d(flat, dim)
    return pooled.reshape(b, h, w, dim).permute(0, 3, 1, 2)


@MODELS.register_module()
class LocalPatchAggregator(nn.Module):
    """Average each level over a ``kernel_size`` neighbourhood, align, concatenate.

    Every feature is replaced by the mean of its p x p neighbourhood (stride 1), which
    widens the receptive field without going deeper into ImageNet-specific layers; the
    levels are then resized to one resolution and concatenated.

    Args:
        kernel_size: Neighbourhood size p. Defaults to 3 (paper).
        target: Resolution to align to: ``'first'`` (the finest level, paper) or
            ``'last'``. Defaults to ``'first'``.
        embed_dim: If set, each level's channels are average-pooled to ``embed_dim``
            and the concatenation pooled to ``embed_dim`` again, as the paper's code does
            (1024 for WideResNet-50). None keeps the concatenation. Defaults to None.
    """

    def __init__(
        self, kernel_size: int = 3, target: str = "first", embed_dim: int | None = None
    ) -> None:
        super().__init__()
        if target not in ("first", "last"):
            raise ValueError(f"target must be 'first' or 'last', got {target!r}")
        self.kernel_size = kernel_size
        self.target = target
        self.embed_dim = embed_dim

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """(B, C_i, H_i, W_i) per level -> (B, D, H, W) patch embeddings."""
        size = features[0 if self.target == "first" else -1].shape[-2:]
        pad = self.kernel_size // 2
        levels = []
        for feat in features:
            feat = F.avg_pool2d(feat, self.kernel_size, stride=1, padding=pad)
            if feat.shape[-2:] != size:
                feat = F.interpolate(feat, size=size, mode="bilinear", align_corners=False)
            if self.embed_dim is not None:
                feat = adaptive_channel_pool(feat, self.embed_dim)
            levels.append(feat)
        out = torch.cat(levels, 1)
        if self.embed_dim is not None:
            out = adaptive_channel_pool(out, self.embed_dim)
        return out
