"""DFKDE (Deep Feature Kernel Density Estimation).

anomalib's DFKDE (no paper of its own; the density-of-deep-features idea of "Deep Feature
Modeling", Ahuja et al., 2019, https://arxiv.org/abs/1909.11786, with a KDE in place of a
Gaussian). An image is its globally average-pooled last-level features of a frozen
ImageNet CNN; it scores how unlikely that vector is under a Gaussian KDE of the normal
images' vectors (after PCA to 16 dims), calibrated to (0, 1). Image scores only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from adtool.models.anomaly.base import MemoryBankModel
from adtool.registry import MODELS


@MODELS.register_module()
class DFKDE(MemoryBankModel):
    """Frozen backbone + global average pooling + :class:`KDEHead`.

    Each returned backbone level is averaged over its positions; several levels are
    concatenated along channels (anomalib's default is one level, ResNet-18 layer4).
    There is no anomaly map: results report ``pixel: null``.

    Args:
        backbone: Config of the frozen feature extractor.
        head: Config of the density head (``KDEHead``).
        data_preprocessor: Config of the batch normaliser. Defaults to None.
        init_cfg: mmengine init config. Defaults to None.
    """

    def __init__(
        self,
        backbone: dict,
        head: dict,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.head = MODELS.build(head)

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, C) globally pooled features (levels concatenated)."""
        features = self.backbone(inputs)
        return torch.cat([F.adaptive_avg_pool2d(f, 1).flatten(1) for f in features], dim=1)

    def fit_embeddings(self, embeddings: torch.Tensor) -> None:
        self.head.fit(embeddings)

    @torch.no_grad()
    def anomaly_outputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.head(self.embed(inputs)), None
