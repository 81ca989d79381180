"""Several vision transformers, each on the image at its own scale (U-Flow's MS-CaiT)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from adtool.errors import ConfigError
from adtool.models.backbones.feature_info import size2
from adtool.models.backbones.vit_token_backbone import ViTTokenBackbone
from adtool.registry import MODELS

__all__ = ["MultiScaleViTBackbone"]


def _scaled(size: tuple[int, int], scale: float) -> tuple[int, int]:
    return (round(size[0] * scale), round(size[1] * scale))


@MODELS.register_module()
class MultiScaleViTBackbone(BaseModule):
    """One :class:`ViTTokenBackbone` per scale: branch ``i`` sees the image resized by
    ``scales[i]`` and returns the normed patch tokens after ``block_indices[i]`` as a map.

    U-Flow's MS-CaiT (Tailanian et al. 2022): CaiT-M48-448 on the 448 px image (tokens after
    block 40: 768 x 28 x 28, stride 16) and CaiT-S24-224 on the image resized to 224 px
    (bicubic, ``align_corners=True`` as the official code; tokens after block 20:
    384 x 14 x 14, stride 32), each through its own final norm.

    Args:
        archs: timm names, one per branch. Defaults to ``('cait_m48_448', 'cait_s24_224')``.
        block_indices: Block (from 0) whose tokens each branch returns. Defaults to
            ``(40, 20)`` (official code: the first 41 and 21 blocks).
        scales: Image resize factor of each branch. Defaults to ``(1.0, 0.5)``.
        img_size: Side of the model's input; branch ``i`` is built for
            ``img_size * scales[i]``. Defaults to 448.
        frozen: Freeze every branch. Defaults to True.
        weights: ``'imagenet'`` (offline files in ``backbones/``, see
            :func:`~adtool.models.backbones.weights.resolve_backbone_weights`) or None for
            random init (tests). Defaults to ``'imagenet'``.
        backbone_dir: Folder holding ``<arch>.<ext>`` weight files. Defaults to
            ``$ADTOOL_BACKBONE_DIR`` or ``./backbones``.
        init_cfg: mmengine init config. Defaults to None.
    """

    def __init__(
        self,
        archs: Sequence[str] = ("cait_m48_448", "cait_s24_224"),
        block_indices: Sequence[int] = (40, 20),
        scales: Sequence[float] = (1.0, 0.5),
        img_size: int = 448,
        frozen: bool = True,
        weights: str | os.PathLike | None = "imagenet",
        backbone_dir: str | os.PathLike | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if not len(archs) == len(block_indices) == len(scales) > 0:
            raise ConfigError(
                f"MultiScaleViTBackbone needs as many archs, block_indices and scales; got "
                f"{len(archs)}, {len(block_indices)} and {len(scales)}"
            )
        self.scales = tuple(float(s) for s in scales)
        self.img_size = int(img_size)
        self.frozen = frozen
        self.branches = nn.ModuleList(
            ViTTokenBackbone(
                arch=arch,
                block_index=int(index),
                img_size=round(self.img_size * scale),
                frozen=frozen,
                weights=weights,
                backbone_dir=backbone_dir,
            )
            for arch, index, scale in zip(archs, block_indices, self.scales)
        )

    @property
    def out_channels(self) -> list[int]:
        """Channels of each branch's map."""
        return [branch.out_channels[0] for branch in self.branches]

    @property
    def reductions(self) -> list[int]:
        """Stride of each map relative to the input: patch size / scale."""
        return [
            round(branch.reductions[0] / scale) for branch, scale in zip(self.branches, self.scales)
        ]

    def feature_shapes(self, input_size: int | Sequence[int]) -> list[tuple[int, int, int]]:
        """(C, h, w) of each branch's map for an input of ``input_size``, no forward."""
        size = size2(input_size)
        return [
            branch.feature_shapes(_scaled(size, scale))[0]
            for branch, scale in zip(self.branches, self.scales)
        ]

    def init_weights(self) -> None:
        """Weights are loaded by the branches; mmengine's re-initialisation must not undo it."""

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> one (B, C_i, h_i, w_i) map per branch."""
        size = tuple(x.shape[-2:])
        maps = []
        for branch, scale in zip(self.branches, self.scales):
            xi = x
            if scale != 1.0:
                xi = F.interpolate(x, size=_scaled(size, scale), mode="bicubic", align_corners=True)
            maps.append(branch(xi)[0])
        return maps
