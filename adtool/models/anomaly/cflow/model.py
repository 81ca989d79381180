"""CFlow.

"CFLOW-AD: Real-Time Unsupervised Anomaly Detection with Localization via Conditional
Normalizing Flows", Gudovskiy et al., WACV 2022, https://arxiv.org/abs/2107.12571.
Per feature level, a conditional normalising flow scores each feature vector (fibre) by
its likelihood given its position; a pixel scores minus the upsampled per-level
likelihoods summed, an image its worst pixel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from adtool.errors import ConfigError
from adtool.models.anomaly.base import BaseAnomalyModel
from adtool.models.components.flows import (
    all_in_one_flow,
    gaussian_log_likelihood,
    positional_encoding_2d,
    subnet_fc,
)
from adtool.registry import MODELS

if TYPE_CHECKING:  # FrEIA (and scipy.stats) load when a flow is built
    from FrEIA.framework import SequenceINN


def cflow_decoder(
    channels: int, coupling_blocks: int, condition_dim: int, clamp: float
) -> SequenceINN:
    """The official ``freia_cflow_head``: conditional ``AllInOneBlock`` couplings on (C,).

    Fully connected subnets (hidden width twice their input), soft (random orthogonal)
    permutations, the condition vector fed to every block.
    """
    return all_in_one_flow(
        (channels,),
        coupling_blocks,
        lambda step: subnet_fc(2.0),
        clamp,
        permute_soft=True,
        cond_dim=condition_dim,
    )


@MODELS.register_module()
class CFlow(BaseAnomalyModel):
    """Frozen backbone + one conditional flow decoder per level, trained on fibres.

    A fibre is the C-dim feature vector at one position of one level; its condition is
    the 2D sinusoidal positional encoding of that position. The decoders are trained by
    maximum likelihood, the paper's ``-log sigmoid(log p(x | c) / C)`` per fibre.

    Training and testing are vectorised over fibres: each step sends every fibre of the
    image batch (or ``max_fibers`` random ones per level) through its level's decoder at
    once and takes one optimiser step for all levels, where the paper loops in Python
    over shuffled fibre batches of 64 with one step each (configs/cflow/README.md has the
    per-epoch cost of both).

    At test time each level's per-dimension log-likelihood ``log p / C`` is shifted by
    its maximum over the training fibres (computed in :meth:`after_train`; the paper
    subtracts the maximum over the test set), exponentiated, upsampled and summed over
    the levels; the anomaly map is minus that sum.

    Args:
        backbone: Config of the frozen feature extractor (``TimmBackbone``).
        coupling_blocks: ``AllInOneBlock`` couplings per decoder. Defaults to 8 (paper).
        condition_dim: Size of the positional encoding. Defaults to 128 (paper).
        clamp: Soft clamp of the affine log-scale. Defaults to 1.9 (official code).
        max_fibers: Fibres sampled at random per level and step; None uses every fibre
            of the batch. Defaults to None.
        data_preprocessor: Config of the batch normaliser. Defaults to None.
        init_cfg: mmengine init config. Defaults to None.
    """

    # after_train reads the training batches through tile_inputs.
    supports_tiling = True

    frozen_parts = ("backbone",)

    def __init__(
        self,
        backbone: dict,
        coupling_blocks: int = 8,
        condition_dim: int = 128,
        clamp: float = 1.9,
        max_fibers: int | None = None,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if condition_dim <= 0 or condition_dim % 4 != 0:
            raise ConfigError(
                f"CFlow model.condition_dim must be a positive multiple of 4, got {condition_dim}"
            )
        if max_fibers is not None and max_fibers < 1:
            raise ConfigError(f"CFlow model.max_fibers must be >= 1 or None, got {max_fibers}")
        self.backbone = MODELS.build(backbone)
        self.condition_dim = int(condition_dim)
        self.max_fibers = max_fibers
        self.decoders = nn.ModuleList(
            cflow_decoder(int(c), coupling_blocks, self.condition_dim, clamp)
            for c in self.backbone.out_channels
        )
        # Max over the training fibres of each level's log p / C (NaN: not yet known,
        # then the batch's own maximum is used). Saved with the weights.
        self.register_buffer(
            "log_prob_max", torch.full((len(self.decoders),), float("nan")), persistent=True
        )
        self._encodings: dict[tuple[int, int], torch.Tensor] = {}

    # ------------------------------------------------------------------ fibres

    def _encoding(self, height: int, width: int, ref: torch.Tensor) -> torch.Tensor:
        """(H*W, P) positional encodings in row-major fibre order, cached per size."""
        key = (height, width)
        if key not in self._encodings:
            enc = positional_encoding_2d(self.condition_dim, height, width)
            self._encodings[key] = enc.flatten(1).T.contiguous()
        return self._encodings[key].to(device=ref.device, dtype=ref.dtype)

    def fibres(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W) -> fibres (B*H*W, C) and their conditions (B*H*W, P)."""
        b, c, h, w = feat.shape
        x = feat.permute(0, 2, 3, 1).reshape(-1, c)
        cond = self._encoding(h, w, feat).repeat(b, 1)
        return x, cond

    def fibre_log_prob(self, level: int, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Fibres (N, C) with conditions (N, P) -> per-dimension log-likelihoods (N,)."""
        z, log_jac_det = self.decoders[level](x, c=[cond])
        return gaussian_log_likelihood(z, log_jac_det) / x.shape[1]

    def level_log_probs(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> per level (B, h, w) log p / C of every fibre, in one pass each."""
        out = []
        for level, feat in enumerate(self.backbone(inputs)):
            x, cond = self.fibres(feat)
            b, _, h, w = feat.shape
            out.append(self.fibre_log_prob(level, x, cond).view(b, h, w))
        return out

    # ------------------------------------------------------------------ training

    def frozen_features(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        """The backbone's levels (no gradient): cached across epochs by the engine."""
        with torch.no_grad():
            return list(self.backbone(inputs))

    def loss_from_features(
        self, features: list[torch.Tensor], inputs: torch.Tensor, data_samples=None
    ) -> dict[str, torch.Tensor]:
        total = inputs.new_zeros(())
        for level, feat in enumerate(features):
            x, cond = self.fibres(feat)
            if self.max_fibers is not None and x.shape[0] > self.max_fibers:
                idx = torch.randperm(x.shape[0], device=x.device)[: self.max_fibers]
                x, cond = x[idx], cond[idx]
            log_prob = self.fibre_log_prob(level, x, cond)
            total = total + (-F.logsigmoid(log_prob)).mean()
            # The latest batch's maximum stands in until after_train has the training set's.
            self.log_prob_max[level] = log_prob.detach().max()
        return dict(loss=total)

    @torch.no_grad()
    def after_train(self, train_loader) -> None:
        """Set each level's ``log_prob_max`` from every training fibre, final weights."""
        was_training = self.training
        self.eval()
        maxima = torch.full_like(self.log_prob_max, float("-inf"))
        for batch in train_loader:
            inputs = self.tile_inputs(self.data_preprocessor(batch, False)["inputs"])
            for level, log_prob in enumerate(self.level_log_probs(inputs)):
                maxima[level] = torch.maximum(maxima[level], log_prob.max())
        self.log_prob_max.copy_(maxima)
        self.train(was_training)

    # ------------------------------------------------------------------ test

    def anomaly_map(self, log_probs: Sequence[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        """Per-level (B, h, w) log p / C -> (B, H, W) map: minus the summed likelihoods."""
        total = 0.0
        for level, log_prob in enumerate(log_probs):
            shift = self.log_prob_max[level]
            if torch.isnan(shift):
                shift = log_prob.max()
            prob = torch.exp(log_prob.double() - shift.double()).float()
            total = total + F.interpolate(
                prob.unsqueeze(1), size=tuple(size), mode="bilinear", align_corners=True
            ).squeeze(1)
        return -total

    @torch.no_grad()
    def anomaly_outputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.anomaly_map(self.level_log_probs(inputs), inputs.shape[-2:])
        return self.image_score_from_map(maps), maps
