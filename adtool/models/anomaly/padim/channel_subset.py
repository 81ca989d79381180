"""Multi-level features at the finest resolution, reduced to a random channel subset (PaDiM)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from adtool.errors import ConfigError
from adtool.registry import MODELS


@MODELS.register_module()
class ChannelSubsetNeck(nn.Module):
    """Upsample every level to the first one's grid, concatenate, keep ``num_channels``.

    PaDiM (Defard et al. 2020, Sec. 3.1) embeds each patch by the concatenated
    activations of layers 1-3 and then keeps a random subset of the dimensions, which
    costs almost nothing in accuracy and shrinks the covariances quadratically. The
    subset is drawn once from ``seed`` and kept as the buffer ``indices``, so it is saved
    in the checkpoint and a reloaded model uses the same channels.

    Args:
        in_channels: Channels of each input level (or their sum). PaDiM fills it in from
            the backbone when the config leaves it out.
        num_channels: Size d of the random subset; None keeps every channel. Defaults to
            100 (the paper's ResNet-18 setting; WideResNet-50 uses 550).
        seed: Seed of the subset draw. Defaults to 0.
        upsample_mode: ``F.interpolate`` mode used to bring coarser levels to the first
            level's grid. Defaults to ``'nearest'`` (each coarse cell is copied onto the
            fine patches it covers, as the paper's code does).
    """

    def __init__(
        self,
        in_channels: int | Sequence[int],
        num_channels: int | None = 100,
        seed: int = 0,
        upsample_mode: str = "nearest",
    ) -> None:
        super().__init__()
        total = in_channels if isinstance(in_channels, int) else sum(in_channels)
        if num_channels is None:
            num_channels = total
        if not 1 <= num_channels <= total:
            raise ConfigError(
                f"ChannelSubsetNeck num_channels={num_channels} must be between 1 and the "
                f"{total} backbone channels; set model.neck.num_channels <= {total}"
            )
        self.in_channels = total
        self.num_channels = num_channels
        self.seed = seed
        self.upsample_mode = upsample_mode
        gen = torch.Generator().manual_seed(seed)
        # Sorted so the kept channels read in backbone order; the Gaussian is invariant
        # to the order anyway.
        indices = torch.randperm(total, generator=gen)[:num_channels].sort().values
        self.register_buffer("indices", indices)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """(B, C_i, H_i, W_i) per level -> (B, d, H_0, W_0)."""
        size = features[0].shape[-2:]
        levels = [
            f if f.shape[-2:] == size else F.interpolate(f, size=size, mode=self.upsample_mode)
            for f in features
        ]
        out = torch.cat(levels, 1)
        if out.shape[1] != self.in_channels:
            raise ConfigError(
                f"ChannelSubsetNeck was built for {self.in_channels} channels but the backbone "
                f"gave {out.shape[1]}; remove model.neck.in_channels so it is taken from the "
                "backbone"
            )
        if self.num_channels == self.in_channels:
            return out
        return out.index_select(1, self.indices)
