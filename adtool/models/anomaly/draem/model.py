"""DRAEM.

"DRAEM - A discriminatively trained reconstruction embedding for surface anomaly
detection", Zavrtanik, Kristan and Skocaj, ICCV 2021, https://arxiv.org/abs/2108.07610.
A reconstructive network learns to turn images with synthetic anomalies (Perlin-noise
masks filled with textures, made by the training pipeline) back into the normal image; a
discriminative U-Net reads (reconstruction, input) and segments the anomaly. A pixel
scores the softmax probability of the anomalous class; an image the maximum of that map
after a mean filter (21 x 21 in the paper's code).

With ``sspcab=True``: the last stage of the reconstructive encoder is an SSPCAB block
("Self-Supervised Predictive Convolutional Attentive Block for Anomaly Detection",
Ristea et al., CVPR 2022, arXiv 2111.09099), trained with an extra MSE between its
input and output.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from mmengine.logging import print_log

from adtool.errors import ConfigError
from adtool.models.anomaly.base import BaseAnomalyModel
from adtool.models.components.dcgan import dcgan_init
from adtool.registry import MODELS
from adtool.structures import AnomalyDataSample

from .networks import DiscriminativeNet, ReconstructiveNet


def find_synthesis(pipeline) -> object | None:
    """The first transform of a (Compose) pipeline that reports a ``source_info``."""
    for transform in getattr(pipeline, "transforms", None) or []:
        if hasattr(transform, "source_info"):
            return transform
    return None


@MODELS.register_module()
class DRAEM(BaseAnomalyModel):
    """Reconstructive network + discriminative network, trained on synthetic anomalies.

    Training batches come from a pipeline with ``PerlinAnomalyMask`` and
    ``TextureAnomalyBlend`` (inputs: images with anomalies; ``gt_mask``: where they
    are; ``img_clean``, packed by ``PackAnomalyInputs(image_keys=['img_clean'])``: the
    reconstruction target). Inputs are normalised like the official code's, to [0, 1]
    (data preprocessor mean 0, std 255). The input side must be a multiple of 32 (five
    poolings in the discriminative network).

    Args:
        reconstructive_width: Channels of the first reconstructive stage (doubled down to
            8x). Defaults to 128 (paper code).
        discriminative_width: Channels of the first discriminative stage. Defaults to 64
            (paper code).
        sspcab: Replace the last reconstructive encoder stage with SSPCAB and add its
            MSE to the loss. Defaults to False.
        sspcab_weight: Weight of the SSPCAB MSE. Defaults to 0.1 (Ristea et al.'s DRAEM
            variant).
        loss_ssim: Config of the SSIM reconstruction loss (added to the L2 loss).
            Defaults to ``SSIMLoss`` with an 11 x 11 window (paper).
        loss_focal: Config of the segmentation loss. Defaults to ``FocalLoss`` with
            gamma 2 (paper).
        score_kernel: Side of the mean filter before the image maximum. Defaults to 21
            (paper code).
        weight_init: ``'normal'``: convolution weights N(0, 0.02), batch-norm weights
            N(1, 0.02), as the official code; ``'pytorch'``: torch's default
            initialisation. Defaults to ``'normal'``.
        data_preprocessor: Config of the batch normaliser. Defaults to None.
        init_cfg: mmengine init config. Defaults to None.
    """

    # before_train only names the anomaly source; loss reads the tiled img_clean/gt_mask.
    supports_tiling = True

    def __init__(
        self,
        reconstructive_width: int = 128,
        discriminative_width: int = 64,
        sspcab: bool = False,
        sspcab_weight: float = 0.1,
        loss_ssim: dict | None = None,
        loss_focal: dict | None = None,
        score_kernel: int = 21,
        weight_init: str = "normal",
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if score_kernel < 1 or score_kernel % 2 == 0:
            raise ConfigError(f"DRAEM score_kernel must be an odd number >= 1, got {score_kernel}")
        self.reconstructive = ReconstructiveNet(3, int(reconstructive_width), bool(sspcab))
        self.discriminative = DiscriminativeNet(6, int(discriminative_width), 2)
        if weight_init not in ("normal", "pytorch"):
            raise ConfigError(
                f"DRAEM weight_init must be 'normal' or 'pytorch', got {weight_init!r}"
            )
        if weight_init == "normal":
            # The official code's initialisation (its weights_init is DCGAN's).
            self.reconstructive.apply(dcgan_init)
            self.discriminative.apply(dcgan_init)
        self.weight_init = weight_init
        self.sspcab = bool(sspcab)
        self.sspcab_weight = float(sspcab_weight)
        self.loss_ssim = MODELS.build(loss_ssim or dict(type="SSIMLoss", window_size=11))
        self.loss_focal = MODELS.build(loss_focal or dict(type="FocalLoss", gamma=2.0))
        self.score_kernel = int(score_kernel)
        self.notes = {"anomaly_source": "not trained in this run (tested from a checkpoint)"}

    def results_info(self) -> dict:
        """What the numbers depend on (written into results.json as ``model_info``)."""
        return dict(self.notes)

    def before_train(self, train_loader) -> None:
        """Name the anomaly source of the training pipeline (one log line, and results)."""
        synthesis = find_synthesis(getattr(train_loader.dataset, "pipeline", None))
        if synthesis is None:
            raise ConfigError(
                "DRAEM trains on synthetic anomalies but the training pipeline has no "
                "TextureAnomalyBlend; use configs/draem/draem_mvtec.py's train_pipeline"
            )
        self.notes["anomaly_source"] = synthesis.source_info
        level = logging.INFO if synthesis.textures else logging.WARNING
        print_log(f"DRAEM anomaly source: {synthesis.source_info}", logger="current", level=level)

    # ------------------------------------------------------------------ networks

    def _check_size(self, inputs: torch.Tensor) -> None:
        h, w = inputs.shape[-2:]
        if h % 32 or w % 32:
            raise ConfigError(
                f"DRAEM needs an input side divisible by 32 (five poolings), got {h} x {w}; "
                "change the pipelines' Resize size"
            )

    def segment(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised (B, 3, H, W) images -> reconstructions and (B, 2, H, W) logits."""
        self._check_size(inputs)
        recon = self.reconstructive(inputs)
        # Official order: reconstruction first; the reconstruction is not detached in
        # training (the segmentation loss also trains the reconstructive network).
        logits = self.discriminative(torch.cat((recon, inputs), 1))
        return recon, logits

    # ------------------------------------------------------------------ training

    def _targets(
        self, inputs: torch.Tensor, data_samples: list[AnomalyDataSample] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(normalised anomaly-free images, (B, H, W) 0/1 masks) of a training batch."""
        if not data_samples or not all("img_clean" in s and "gt_mask" in s for s in data_samples):
            raise ConfigError(
                "DRAEM's training samples need img_clean and gt_mask: the train pipeline "
                "must end with PerlinAnomalyMask, TextureAnomalyBlend and "
                "PackAnomalyInputs(image_keys=['img_clean'])"
            )
        clean = torch.stack([s.img_clean for s in data_samples]).to(inputs.device).float()
        dp = self.data_preprocessor
        clean = (clean - dp.mean) / dp.std if getattr(dp, "_enable_normalize", True) else clean
        masks = torch.stack([s.gt_mask for s in data_samples]).to(inputs.device).long()
        return clean, masks

    def loss(self, inputs: torch.Tensor, data_samples: list[AnomalyDataSample] | None) -> dict:
        clean, masks = self._targets(inputs, data_samples)
        recon, logits = self.segment(inputs)
        losses = dict(
            loss_l2=F.mse_loss(recon, clean),
            loss_ssim=self.loss_ssim(recon, clean),
            loss_focal=self.loss_focal(logits, masks),
        )
        if self.sspcab:
            block_in, block_out = self.reconstructive.encoder.sspcab_io
            losses["loss_sspcab"] = self.sspcab_weight * F.mse_loss(block_out, block_in)
        return losses

    # ------------------------------------------------------------------ inference

    def score_from_map(self, maps: torch.Tensor) -> torch.Tensor:
        """(B, H, W) maps -> (B,) image scores: maximum of the mean-filtered map."""
        k = self.score_kernel
        smoothed = F.avg_pool2d(maps[:, None], k, stride=1, padding=k // 2)
        return smoothed.flatten(1).amax(1)

    @torch.no_grad()
    def anomaly_outputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, logits = self.segment(inputs)
        maps = logits.softmax(1)[:, 1]
        return self.score_from_map(maps), maps
