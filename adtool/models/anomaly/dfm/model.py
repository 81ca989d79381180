"""DFM (Deep Feature Modeling).

"Probabilistic Modeling of Deep Features for Out-of-Distribution and Adversarial
Detection", Ahuja et al., 2019, https://arxiv.org/abs/1909.11786; the anomaly-detection
form of anomalib's DFM. PCA of the pooled, flattened features of a frozen backbone layer
over the normal images; an image scores how badly the PCA reconstructs its feature
vector ('fre') or the Gaussian negative log-likelihood of its PCA coordinates ('nll').
"""

from __future__ import annotations

import torch

from adtool.errors import ConfigError
from adtool.models.anomaly.base import MemoryBankModel
from adtool.registry import MODELS


@MODELS.register_module()
class DFM(MemoryBankModel):
    """Backbone (one level) + :class:`AvgPoolNeck` + :class:`PCAFeatureHead`.

    The anomaly map is the head's reconstruction-error map on the pooled grid
    (ResNet-50 layer3 at 224 px pooled by 4: 3 x 3), upsampled bilinearly to the input,
    as anomalib does; it is coarse by construction, so DFM is mainly an image-level
    detector. See :class:`PCAFeatureHead` for both score types.

    Args:
        backbone: Config of the frozen feature extractor (a single level).
        neck: Config of the pooling. None feeds the level unpooled.
        head: Config of the PCA head.
        blur_sigma: Std of a Gaussian smoothing of the upsampled map, in pixels; 0 keeps
            the bilinear map. Defaults to 0 (anomalib).
        data_preprocessor: Config of the batch normaliser. Defaults to None.
        init_cfg: mmengine init config. Defaults to None.
    """

    def __init__(
        self,
        backbone: dict,
        neck: dict | None,
        head: dict,
        blur_sigma: float = 0.0,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck) if neck is not None else None
        self.head = MODELS.build(head)
        self.blur_sigma = blur_sigma

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, C, h, w) pooled features."""
        features = self.backbone(inputs)
        if self.neck is not None:
            return self.neck(features)
        if len(features) != 1:
            raise ConfigError(
                f"DFM without a neck takes one feature level, got {len(features)}; set "
                "model.backbone.out_indices to a single level, e.g. (3,)"
            )
        return features[0]

    def fit_embeddings(self, embeddings: torch.Tensor) -> None:
        self.head.fit(embeddings)

    @torch.no_grad()
    def anomaly_outputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores, error_map = self.head(self.embed(inputs))
        return scores, self.to_input_map(error_map, inputs.shape[-2:], self.blur_sigma)
