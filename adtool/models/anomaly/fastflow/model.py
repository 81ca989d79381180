"""FastFlow.

"FastFlow: Unsupervised Anomaly Detection and Localization via 2D Normalizing Flows",
Yu et al., 2021, https://arxiv.org/abs/2111.07677. 2D normalising flows, trained by
maximum likelihood, map a frozen backbone's feature maps to a standard normal; a pixel
scores minus the (upsampled) likelihood of its latents, an image its worst pixel.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from adtool.errors import ConfigError
from adtool.models.anomaly.base import BaseAnomalyModel
from adtool.models.backbones.feature_info import (
    backbone_feature_shapes,
    fill_from_backbone,
    size2,
)
from adtool.registry import MODELS


@MODELS.register_module()
class FastFlow(BaseAnomalyModel):
    """Frozen backbone + optional :class:`LayerNormNeck` + :class:`Flow2DHead` + NLL loss.

    The flows need each level's (C, H, W) when they are built, so the model computes
    them from the backbone at ``input_size`` and hands them to the neck and head
    (``feature_shapes``); images of another size are refused with a message.

    Args:
        backbone: Config of the frozen feature extractor (``TimmBackbone`` for CNNs,
            ``ViTTokenBackbone`` for CaiT / DeiT).
        head: Config of the flows (:class:`Flow2DHead`).
        neck: Config of the per-level normalisation (:class:`LayerNormNeck` for CNNs);
            None for transformers, whose own final norm is used. Defaults to None.
        loss: Config of the training loss. Defaults to ``dict(type='FlowNLLLoss')``.
        input_size: Image size (H, W) or side the model is built for; must match the
            pipeline's ``Resize``. Defaults to 256 (paper, ResNets).
        data_preprocessor: Config of the batch normaliser. Defaults to None.
        init_cfg: mmengine init config. Defaults to None.
    """

    frozen_parts = ("backbone",)

    def __init__(
        self,
        backbone: dict,
        head: dict,
        neck: dict | None = None,
        loss: dict | None = None,
        input_size: int | Sequence[int] = 256,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.input_size = size2(input_size)
        self.backbone = MODELS.build(backbone)
        self.feature_shapes = backbone_feature_shapes(self.backbone, self.input_size)
        self.neck = None if neck is None else MODELS.build(self._with_shapes(neck, "neck"))
        self.head = MODELS.build(self._with_shapes(head, "head"))
        self.criterion = MODELS.build(loss if loss is not None else dict(type="FlowNLLLoss"))

    def _with_shapes(self, cfg: dict, part: str) -> dict:
        if "feature_shapes" in cfg:
            raise ConfigError(
                f"FastFlow computes model.{part}.feature_shapes from the backbone and "
                "model.input_size; remove it from the config"
            )
        return fill_from_backbone(cfg, self.backbone, feature_shapes=self.feature_shapes)

    def features(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> the flows' inputs, one (B, C, h, w) map per level."""
        return self.normalize(self.frozen_features(inputs))

    def frozen_features(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        """The backbone's levels: cached across epochs by the engine when it is frozen."""
        self.check_input_size(inputs)
        return list(self.backbone(inputs))

    def normalize(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """The neck's (trained) per-level normalisation, or the levels as they are."""
        return feats if self.neck is None else self.neck(feats)

    def loss_from_features(
        self, features: list[torch.Tensor], inputs: torch.Tensor, data_samples=None
    ) -> dict[str, torch.Tensor]:
        latents, log_jac_dets = self.head(self.normalize(features))
        return dict(loss=self.criterion(latents, log_jac_dets))

    @torch.no_grad()
    def anomaly_outputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.outputs_from_features(self.frozen_features(inputs), inputs)

    @torch.no_grad()
    def outputs_from_features(
        self, features: list[torch.Tensor], inputs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        latents, _ = self.head(self.normalize(features))
        maps = self.head.anomaly_map(latents, inputs.shape[-2:])
        return self.image_score_from_map(maps), maps
