"""STFPM.

"Student-Teacher Feature Pyramid Matching for Anomaly Detection", Wang et al., BMVC 2021,
https://arxiv.org/abs/2103.04257. A student network of the teacher's architecture learns
to reproduce the frozen ImageNet teacher's normalised multi-level features on normal
images; a position scores the product over levels of the teacher/student feature distance,
an image its worst position.
"""

from __future__ import annotations

import torch

from adtool.errors import ConfigError
from adtool.models.anomaly.base import BaseAnomalyModel
from adtool.registry import MODELS
from adtool.structures import AnomalyDataSample


@MODELS.register_module()
class STFPM(BaseAnomalyModel):
    """Frozen teacher + trained student backbone + :class:`FeatureDistanceHead`.

    Args:
        teacher: Config of the pretrained backbone; frozen, kept in eval mode.
        student: Config of the same architecture at random init, trained.
        head: Config of the map head (paper: ``FeatureDistanceHead`` with
            ``distance='l2_normalized', fusion='product'``).
        loss: Config of the feature loss (paper: ``CosineFeatureLoss``, per position).
        blur_sigma: Std of a Gaussian smoothing of the map, in pixels; 0 turns it off.
            Defaults to 0 (the paper does not smooth).
        data_preprocessor: Config of the batch normaliser. Defaults to None.
        init_cfg: mmengine init config. Defaults to None.
    """

    def __init__(
        self,
        teacher: dict,
        student: dict,
        head: dict,
        loss: dict,
        blur_sigma: float = 0.0,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.teacher = MODELS.build(teacher)
        self.student = MODELS.build(student)
        if getattr(self.teacher, "frozen", True) is False:
            raise ConfigError("STFPM's teacher must be frozen; set model.teacher.frozen=True")
        if getattr(self.student, "frozen", False) is True:
            raise ConfigError("STFPM's student is the trained part; set model.student.frozen=False")
        t_ch = getattr(self.teacher, "out_channels", None)
        s_ch = getattr(self.student, "out_channels", None)
        if t_ch != s_ch:
            raise ConfigError(
                f"STFPM: teacher levels have {t_ch} channels but student levels {s_ch}; give "
                "model.student the teacher's arch and out_indices"
            )
        self.teacher.requires_grad_(False)
        self.head = MODELS.build(head)
        self.criterion = MODELS.build(loss)
        self.blur_sigma = blur_sigma

    def train(self, mode: bool = True) -> STFPM:
        super().train(mode)
        # The teacher's batch-norm statistics are part of what the student imitates.
        self.teacher.eval()
        return self

    def features(self, inputs: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Teacher (no gradient) and student feature pyramids of a normalised batch."""
        with torch.no_grad():
            teacher = self.teacher(inputs)
        return teacher, self.student(inputs)

    def frozen_features(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        """The teacher's feature pyramid (no gradient): cached across epochs by the engine."""
        with torch.no_grad():
            return list(self.teacher(inputs))

    def loss_from_features(
        self,
        features: list[torch.Tensor],
        inputs: torch.Tensor,
        data_samples: list[AnomalyDataSample] | None,
    ) -> dict:
        return dict(loss=self.criterion(features, self.student(inputs)))

    @torch.no_grad()
    def anomaly_outputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.outputs_from_features(self.frozen_features(inputs), inputs)

    @torch.no_grad()
    def outputs_from_features(
        self, features: list[torch.Tensor], inputs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        teacher, student = features, self.student(inputs)
        maps = self.head(teacher, student, inputs.shape[-2:])
        maps = self.to_input_map(maps, inputs.shape[-2:], self.blur_sigma)
        return self.image_score_from_map(maps), maps
