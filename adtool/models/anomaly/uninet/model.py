"""UniNet.

"UniNet: A Contrastive Learning-guided Unified Framework with Feature Selection for
Anomaly Detection", Wei, Jiang & Xu, CVPR 2025 (official code:
github.com/pangdatangtt/UniNet). Two copies of an ImageNet encoder describe the image: a
source teacher, frozen, and a target teacher, fine-tuned at a tiny learning rate so that
it drifts towards the domain. Both teachers' levels go (as one doubled batch) through an
attention bottleneck into a de-ResNet student that must restore them; the student's
restoration of the target teacher's input is compared with the source teacher's features
and vice versa. Training weights the student's features by priors from the teacher's
(domain-related feature selection) and asks, per position, for cosine agreement, for the
teacher at the same position to be the most similar of all positions (similarity
contrastive loss, temperature 0.1) and for that similarity to approach 1 (margin loss).
At test time the per-level ``1 - cos`` maps are summed into the anomaly map, and an
image scores the mean of a top-k whose size follows the maps' maxima (weighted decision
mechanism).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from adtool.errors import ConfigError
from adtool.models.anomaly.base import BaseAnomalyModel
from adtool.models.backbones.feature_info import fill_from_backbone
from adtool.models.components import gaussian_blur
from adtool.registry import MODELS
from adtool.structures import AnomalyDataSample

from .decision import decision_weights, fuse_maps, weighted_score
from .feature_selection import DomainFeatureSelection

SCORES = ("weighted", "max")


@MODELS.register_module()
class UniNet(BaseAnomalyModel):
    """Source teacher (frozen) + target teacher (trained) + attention bottleneck + student.

    ``backbone`` is built twice from one config: ``source_teacher`` frozen,
    ``target_teacher`` trainable and starting from the same weights. The config's
    optimiser gives the target teacher its own (tiny) learning rate through
    ``paramwise_cfg.custom_keys['target_teacher']``.

    Args:
        backbone: Config of the teachers' encoder (paper: WideResNet-50 layers 1-3).
            Its ``frozen`` key is set per teacher and must not be False.
        neck: Config of the bottleneck (``AttentionBottleneckNeck``).
        decoder: Config of the student (``ReverseDecoder``, the de-ResNet).
        loss: Config of the loss (``UniNetLoss``).
        feature_selection: Weight the student's features by the teacher's priors in the
            loss (:class:`DomainFeatureSelection`). Defaults to True (paper).
        alpha: Weighted decision: scale of the mean of the chosen maxima. Defaults to
            0.01 (official code).
        beta: Weighted decision: lower bound of the top-k fraction. Defaults to 3e-5
            (official code).
        score: ``'weighted'`` (the weighted decision mechanism) or ``'max'`` (the map's
            maximum). Defaults to ``'weighted'``.
        blur_sigma: Std of the Gaussian smoothing of the map before scoring, in pixels.
            Defaults to 4.
        data_preprocessor: Config of the batch normaliser. Defaults to None.
        init_cfg: mmengine init config. Defaults to None.
    """

    def __init__(
        self,
        backbone: dict,
        neck: dict,
        decoder: dict,
        loss: dict,
        feature_selection: bool = True,
        alpha: float = 0.01,
        beta: float = 3e-5,
        score: str = "weighted",
        blur_sigma: float = 4.0,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if backbone.get("frozen", True) is False:
            raise ConfigError(
                "UniNet builds a frozen source teacher and a trained target teacher from "
                "model.backbone; remove model.backbone.frozen=False"
            )
        if score not in SCORES:
            raise ConfigError(f"UniNet: score must be one of {SCORES}, got {score!r}")
        if not 0 < beta <= 1 or alpha < 0:
            raise ConfigError(f"UniNet: need alpha >= 0 and 0 < beta <= 1, got {alpha}, {beta}")
        self.source_teacher = MODELS.build(dict(backbone, frozen=True))
        self.source_teacher.requires_grad_(False)
        self.target_teacher = MODELS.build(dict(backbone, frozen=False))
        self.target_teacher.load_state_dict(self.source_teacher.state_dict())
        self.neck = MODELS.build(
            fill_from_backbone(
                neck, self.source_teacher, in_channels="out_channels", reductions="reductions"
            )
        )
        self.decoder = MODELS.build(
            fill_from_backbone(
                decoder,
                self.source_teacher,
                in_channels=self.neck.out_channels,
                in_reduction=self.neck.out_reduction,
                out_channels="out_channels",
                reductions="reductions",
            )
        )
        self.selection = (
            DomainFeatureSelection(self.source_teacher.out_channels) if feature_selection else None
        )
        self.criterion = MODELS.build(loss)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.score = score
        self.blur_sigma = float(blur_sigma)

    def train(self, mode: bool = True) -> UniNet:
        super().train(mode)
        # The source teacher is the fixed reference; its batch norm must not adapt.
        self.source_teacher.eval()
        return self

    def results_info(self) -> dict:
        """What the numbers depend on (written into results.json as ``model_info``)."""
        return dict(
            score=self.score,
            feature_selection=self.selection is not None,
            temperature=getattr(self.criterion, "temperature", None),
        )

    # ------------------------------------------------------------------ networks

    def features(self, inputs: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Teacher and student maps, paired: ``2 L`` of each for ``L`` levels.

        Teachers: the source teacher's levels, then the target teacher's. Students: the
        restoration of the target teacher's levels, then of the source teacher's (both
        teachers' levels pass through the bottleneck and student as one batch of 2B), so
        each teacher is compared with the student's reading of the other one.
        """
        return self.pair(self.frozen_features(inputs), inputs)

    def frozen_features(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        """The source teacher's levels (no gradient): cached across epochs by the engine."""
        with torch.no_grad():
            return list(self.source_teacher(inputs))

    def pair(
        self, source: list[torch.Tensor], inputs: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """:meth:`features` given the source teacher's levels."""
        target = self.target_teacher(inputs)
        embedding = self.neck([torch.cat([t, s]) for t, s in zip(target, source)])
        restored = self.decoder(embedding, sizes=[f.shape[-2:] for f in source])
        b = inputs.shape[0]
        students = [r[:b] for r in restored] + [r[b:] for r in restored]
        return list(source) + list(target), students

    def loss_from_features(
        self,
        features: list[torch.Tensor],
        inputs: torch.Tensor,
        data_samples: list[AnomalyDataSample] | None,
    ) -> dict:
        teachers, students = self.pair(features, inputs)
        if self.selection is not None:
            students = self.selection(students, teachers)
        return dict(loss=self.criterion(students, teachers))

    @torch.no_grad()
    def anomaly_outputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        teachers, students = self.features(inputs)
        level_maps = [1 - F.cosine_similarity(t, s, dim=1) for t, s in zip(teachers, students)]
        maps = fuse_maps(level_maps, inputs.shape[-2:])
        maps = gaussian_blur(maps.unsqueeze(1), self.blur_sigma).squeeze(1)
        if self.score == "max":
            return self.image_score_from_map(maps), maps
        weights = decision_weights(level_maps, self.alpha, self.beta)
        return weighted_score(maps, weights), maps
