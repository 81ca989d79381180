"""Reverse Distillation.

"Anomaly Detection via Reverse Distillation from One-Class Embedding", Deng & Li, CVPR
2022, https://arxiv.org/abs/2201.10703. A frozen ImageNet encoder's levels are squeezed
into a one-class bottleneck embedding, and a student decoder restores every level from it;
a position scores the sum over levels of 1 - cosine between encoder and decoder features
(smoothed), an image its worst position.
"""

from __future__ import annotations

import torch

from adtool.errors import ConfigError
from adtool.models.anomaly.base import BaseAnomalyModel
from adtool.models.backbones.feature_info import fill_from_backbone
from adtool.registry import MODELS
from adtool.structures import AnomalyDataSample


@MODELS.register_module()
class ReverseDistillation(BaseAnomalyModel):
    """Frozen encoder + :class:`OCBENeck` + :class:`ReverseDecoder` + distance head.

    The neck and decoder take their channel widths from the encoder's levels (and the
    neck's output), so one config works for any backbone whose chosen levels double in
    stride.

    Args:
        backbone: Config of the frozen pretrained encoder (paper: WideResNet-50
            layers 1-3).
        neck: Config of the one-class bottleneck (``OCBENeck``).
        decoder: Config of the reverse decoder (``ReverseDecoder``).
        head: Config of the map head (paper: ``FeatureDistanceHead`` with
            ``distance='cosine', fusion='sum'``).
        loss: Config of the feature loss (``CosineFeatureLoss``).
        blur_sigma: Std of the Gaussian smoothing of the map, in pixels. Defaults to 4
            (paper).
        data_preprocessor: Config of the batch normaliser. Defaults to None.
        init_cfg: mmengine init config. Defaults to None.
    """

    def __init__(
        self,
        backbone: dict,
        neck: dict,
        decoder: dict,
        head: dict,
        loss: dict,
        blur_sigma: float = 4.0,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        if getattr(self.backbone, "frozen", True) is False:
            raise ConfigError(
                "ReverseDistillation's encoder must be frozen; set model.backbone.frozen=True"
            )
        self.backbone.requires_grad_(False)
        self.neck = MODELS.build(
            fill_from_backbone(
                neck, self.backbone, in_channels="out_channels", reductions="reductions"
            )
        )
        self.decoder = MODELS.build(
            fill_from_backbone(
                decoder,
                self.backbone,
                in_channels=self.neck.out_channels,
                in_reduction=self.neck.out_reduction,
                out_channels="out_channels",
                reductions="reductions",
            )
        )
        self.head = MODELS.build(head)
        self.criterion = MODELS.build(loss)
        self.blur_sigma = blur_sigma

    def train(self, mode: bool = True) -> ReverseDistillation:
        super().train(mode)
        # The encoder is the fixed teacher; its batch norm must not adapt to the data.
        self.backbone.eval()
        return self

    def features(self, inputs: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Encoder levels (no gradient) and the decoder's restoration of each."""
        encoded = self.frozen_features(inputs)
        return encoded, self.restore(encoded)

    def frozen_features(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's levels (no gradient): cached across epochs by the engine."""
        with torch.no_grad():
            return list(self.backbone(inputs))

    def restore(self, encoded: list[torch.Tensor]) -> list[torch.Tensor]:
        """The decoder's restoration of each encoder level, through the OCBE bottleneck."""
        return self.decoder(self.neck(encoded), sizes=[f.shape[-2:] for f in encoded])

    def loss_from_features(
        self,
        features: list[torch.Tensor],
        inputs: torch.Tensor,
        data_samples: list[AnomalyDataSample] | None,
    ) -> dict:
        return dict(loss=self.criterion(features, self.restore(features)))

    @torch.no_grad()
    def anomaly_outputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.outputs_from_features(self.frozen_features(inputs), inputs)

    @torch.no_grad()
    def outputs_from_features(
        self, features: list[torch.Tensor], inputs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        encoded, restored = features, self.restore(features)
        maps = self.head(encoded, restored, inputs.shape[-2:])
        maps = self.to_input_map(maps, inputs.shape[-2:], self.blur_sigma)
        return self.image_score_from_map(maps), maps
