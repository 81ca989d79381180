"""PaDiM.

"PaDiM: a Patch Distribution Modeling Framework for Anomaly Detection and Localization",
Defard et al., ICPR 2020, https://arxiv.org/abs/2011.08785. Each patch position gets a
multivariate Gaussian of the frozen backbone's layer 1-3 embeddings (a random channel
subset) over the normal images; a test patch scores its Mahalanobis distance to its
position's Gaussian, the image the maximum of the smoothed map.
"""

from __future__ import annotations

import torch

from adtool.models.anomaly.base import MemoryBankModel
from adtool.models.backbones.feature_info import fill_from_backbone
from adtool.registry import MODELS


@MODELS.register_module()
class PaDiM(MemoryBankModel):
    """Backbone + :class:`ChannelSubsetNeck` + :class:`GaussianHead`.

    The training embeddings (N, d, h, w) are collected by ``FitLoop`` and fitted once;
    see :class:`GaussianHead` for the memory the statistics take.

    Args:
        backbone: Config of the frozen feature extractor (layers 1-3).
        neck: Config of the level concatenation and channel subset; an unset
            ``in_channels`` is the backbone's.
        head: Config of the per-position Gaussian head.
        blur_sigma: Std of the Gaussian smoothing of the upsampled map, in pixels.
            Defaults to 4 (paper).
        data_preprocessor: Config of the batch normaliser. Defaults to None.
        init_cfg: mmengine init config. Defaults to None.
    """

    def __init__(
        self,
        backbone: dict,
        neck: dict,
        head: dict,
        blur_sigma: float = 4.0,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(
            fill_from_backbone(neck, self.backbone, in_channels="out_channels")
        )
        self.head = MODELS.build(head)
        self.blur_sigma = blur_sigma

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, d, h, w) patch embeddings."""
        return self.neck(self.backbone(inputs))

    def fit_embeddings(self, embeddings: torch.Tensor) -> None:
        self.head.fit(embeddings)

    @torch.no_grad()
    def anomaly_outputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dist = self.head(self.embed(inputs))
        maps = self.to_input_map(dist, inputs.shape[-2:], self.blur_sigma)
        return self.image_score_from_map(maps), maps
