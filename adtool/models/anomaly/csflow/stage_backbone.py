"""The output of one block stage of a timm EfficientNet (CS-Flow's ``features.6.8``)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch

from adtool.errors import ConfigError
from adtool.models.backbones.feature_info import conv_feature_shapes
from adtool.models.backbones.timm_backbone import TimmBackbone
from adtool.registry import MODELS


@MODELS.register_module()
class TimmStageBackbone(TimmBackbone):
    """The feature map after block stage ``stage`` of a timm EfficientNet-family network.

    timm's feature levels end where the stride changes, so the end of a stride-32 stage
    that another stride-32 stage follows (EfficientNet-B5's ``blocks.5``, torchvision's
    ``features.6.8``: CS-Flow's 304 channels) is not one of them. This backbone loads the
    network as :class:`TimmBackbone` does (offline weights, the same checks), keeps the
    stem and the stages up to ``stage`` and returns that stage's output as its one level.

    Args:
        arch: timm EfficientNet-family name (``conv_stem``, ``bn1``, ``blocks``), e.g.
            ``'tf_efficientnet_b5.aa_in1k'`` or ``'tf_efficientnet_lite0'``.
        stage: Index into timm's ``blocks`` (0-based; torchvision's ``features`` index
            minus one). Defaults to 5 (EfficientNet-B5: 304 channels, stride 32).
        frozen: Freeze the network and keep it in eval mode. Defaults to True.
        weights: ``'imagenet'``, a file path, or None for random init. Defaults to
            ``'imagenet'``.
        backbone_dir: Folder holding ``<arch>.<ext>`` weight files. Defaults to
            ``$ADTOOL_BACKBONE_DIR`` or ``./backbones``.
        init_cfg: mmengine init config. Defaults to None.
    """

    def __init__(
        self,
        arch: str,
        stage: int = 5,
        frozen: bool = True,
        weights: str | os.PathLike | None = "imagenet",
        backbone_dir: str | os.PathLike | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        # Level 4 (stride 32) is the last of every EfficientNet: nothing is dropped yet.
        super().__init__(
            arch,
            out_indices=(4,),
            frozen=frozen,
            weights=weights,
            backbone_dir=backbone_dir,
            init_cfg=init_cfg,
        )
        blocks = self.model.blocks
        if not 0 <= stage < len(blocks):
            raise ConfigError(
                f"TimmStageBackbone stage must be in 0..{len(blocks) - 1} for {arch}, got {stage}"
            )
        self.stage = int(stage)
        self.model.blocks = blocks[: self.stage + 1]
        was_training = self.model.training
        self.model.eval()  # the probe must not move batch-norm statistics
        with torch.no_grad():  # channels and stride of the kept stage, from one small pass
            probe = self._run(torch.zeros(1, 3, 64, 64, device=next(self.parameters()).device))
        self.model.train(was_training)
        self._channels = int(probe.shape[1])
        self._reduction = 64 // int(probe.shape[-1])

    @property
    def out_channels(self) -> list[int]:
        return [self._channels]

    @property
    def reductions(self) -> list[int]:
        return [self._reduction]

    def feature_shapes(self, input_size: int | Sequence[int]) -> list[tuple[int, int, int]]:
        return conv_feature_shapes(self.out_channels, self.reductions, input_size)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.blocks(self.model.bn1(self.model.conv_stem(x)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.frozen:
            with torch.no_grad():
                return [self._run(x)]
        return [self._run(x)]
