"""U-Flow.

"U-Flow: A U-shaped Normalizing Flow for Anomaly Detection with Unsupervised Threshold",
Tailanian, Pardo and Musé, 2022 (J. Math. Imaging Vis. 2024),
https://arxiv.org/abs/2211.12353. A U-shaped normalising flow maps multi-scale features
(MS-CaiT: two CaiTs at two image scales) to independent N(0, I) latents; a pixel scores
one minus the mean (over scales, upsampled) likelihood of its latents, an image its worst
pixel; the a-contrario log-NFA map of the latents gives the automatic threshold
``log10 NFA < 0`` (NFA < epsilon = 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from adtool.errors import ConfigError
from adtool.models.anomaly.base import BaseAnomalyModel
from adtool.models.anomaly.uflow.nfa import log10_nfa_map
from adtool.models.backbones.feature_info import (
    backbone_feature_shapes,
    fill_from_backbone,
    size2,
)
from adtool.models.components.flows import gaussian_log_likelihood
from adtool.registry import MODELS
from adtool.structures import AnomalyDataSample


def likelihood_anomaly_map(latents: Sequence[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
    """Latents per scale -> (B, H, W) ``1 - mean_l up(exp(-0.5 * mean_c z_l^2))``.

    The per-position likelihood uses the channel mean so that every scale weighs the same
    whatever its channels (official code); the scales' maps are upsampled bilinearly.
    """
    likelihood = torch.stack(
        [
            F.interpolate(
                torch.exp(-0.5 * z.pow(2).mean(1, keepdim=True)),
                size=tuple(size),
                mode="bilinear",
                align_corners=False,
            )
            for z in latents
        ]
    ).mean(0)
    return 1.0 - likelihood.squeeze(1)


@MODELS.register_module()
class UFlow(BaseAnomalyModel):
    """Frozen multi-scale backbone + optional per-level norm + :class:`UShapedFlowHead`.

    Trained by maximum likelihood: the loss is the batch mean of ``0.5 * ||z||^2 -
    log|det J|`` over the latents of every scale (one graph, one log-determinant). At test
    time ``predict`` also sets each sample's ``nfa_score`` (``max`` over pixels of
    ``log10 epsilon - log10 NFA``: positive iff some pixel is detected) and ``nfa_mask``
    (``log10 NFA < log10 epsilon``), which the metric reports as the ``nfa`` threshold.

    Args:
        backbone: Config of the frozen feature extractor (:class:`MultiScaleViTBackbone`
            for MS-CaiT, ``TimmBackbone`` for CNNs).
        head: Config of the flow. Defaults to ``dict(type='UShapedFlowHead')``.
        neck: Config of the per-level normalisation (``LayerNormNeck`` for CNNs, as the
            official code's CNN extractors); None for transformers, whose own final norm
            is used. Defaults to None.
        input_size: Image size (H, W) or side the model is built for; must match the
            pipeline's ``Resize``. Defaults to 448 (paper).
        nfa_window_size: Window side of the candidate count at the finest scale.
            Defaults to 7 (paper).
        nfa_probability_thr: ``q``: a latent is a candidate when ``z^2`` exceeds the
            chi-square(1) ``q``-quantile. Defaults to 0.5 (paper).
        nfa_epsilon: Allowed expected number of false alarms per image. Defaults to 1.0
            (paper: the automatic threshold ``log10 NFA < 0``).
        data_preprocessor: Config of the batch normaliser. Defaults to None.
        init_cfg: mmengine init config. Defaults to None.
    """

    frozen_parts = ("backbone",)

    def __init__(
        self,
        backbone: dict,
        head: dict | None = None,
        neck: dict | None = None,
        input_size: int | Sequence[int] = 448,
        nfa_window_size: int = 7,
        nfa_probability_thr: float = 0.5,
        nfa_epsilon: float = 1.0,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if not 0.0 < nfa_probability_thr < 1.0:
            raise ConfigError(
                f"UFlow nfa_probability_thr must be in (0, 1), got {nfa_probability_thr}"
            )
        if nfa_epsilon <= 0 or nfa_window_size < 1:
            raise ConfigError(
                f"UFlow needs nfa_epsilon > 0 and nfa_window_size >= 1, got {nfa_epsilon} "
                f"and {nfa_window_size}"
            )
        self.input_size = size2(input_size)
        self.nfa_window_size = int(nfa_window_size)
        self.nfa_probability_thr = float(nfa_probability_thr)
        self.nfa_epsilon = float(nfa_epsilon)
        self.backbone = MODELS.build(backbone)
        self.feature_shapes = backbone_feature_shapes(self.backbone, self.input_size)
        self.neck = None if neck is None else MODELS.build(self._with_shapes(neck, "neck"))
        head = head if head is not None else dict(type="UShapedFlowHead")
        self.head = MODELS.build(self._with_shapes(head, "head"))

    def _with_shapes(self, cfg: dict, part: str) -> dict:
        if "feature_shapes" in cfg:
            raise ConfigError(
                f"UFlow computes model.{part}.feature_shapes from the backbone and "
                "model.input_size; remove it from the config"
            )
        return fill_from_backbone(cfg, self.backbone, feature_shapes=self.feature_shapes)

    def results_info(self) -> dict:
        """What the ``nfa`` threshold depends on (results.json ``model_info``)."""
        return {
            "nfa": dict(
                epsilon=self.nfa_epsilon,
                window_size=self.nfa_window_size,
                probability_thr=self.nfa_probability_thr,
                latent_shapes=[list(s) for s in self.head.latent_shapes()],
            )
        }

    def features(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> the flow's inputs, one (B, C, h, w) map per level, finest first."""
        return self.normalize(self.frozen_features(inputs))

    def frozen_features(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        """The backbone's levels: cached across epochs by the engine when it is frozen."""
        self.check_input_size(inputs)
        return list(self.backbone(inputs))

    def normalize(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """The neck's per-level normalisation, or the levels as they are."""
        return feats if self.neck is None else self.neck(feats)

    def loss_from_features(
        self, features: list[torch.Tensor], inputs: torch.Tensor, data_samples=None
    ) -> dict[str, torch.Tensor]:
        latents, log_jac_det = self.head(self.normalize(features))
        z = torch.cat([latent.flatten(1) for latent in latents], 1)
        return dict(loss=-gaussian_log_likelihood(z, log_jac_det, constant=False).mean())

    @torch.no_grad()
    def latents(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> the latents of every scale, finest first."""
        return self.head(self.features(inputs))[0]

    @torch.no_grad()
    def anomaly_outputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = likelihood_anomaly_map(self.latents(inputs), inputs.shape[-2:])
        return self.image_score_from_map(maps), maps

    @torch.no_grad()
    def log_nfa(self, latents: Sequence[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        """(B, H, W) ``log10 NFA`` of the latents (see :func:`log10_nfa_map`)."""
        return log10_nfa_map(latents, size, self.nfa_window_size, self.nfa_probability_thr)

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor, data_samples=None) -> list:
        """Scores and maps as every model, plus each sample's ``nfa_score`` and ``nfa_mask``."""
        latents = self.latents(inputs)
        size = inputs.shape[-2:]
        maps = likelihood_anomaly_map(latents, size)
        scores = self.image_score_from_map(maps)
        margin = math.log10(self.nfa_epsilon) - self.log_nfa(latents, size)
        if data_samples is None:
            data_samples = [AnomalyDataSample() for _ in range(len(scores))]
        for sample, score, amap, m in zip(data_samples, scores, maps, margin):
            sample.pred_score = score.cpu()
            sample.anomaly_map = amap.cpu()
            sample.nfa_score = m.amax().cpu()
            sample.nfa_mask = (m > 0).to(torch.uint8).cpu()
        return data_samples
