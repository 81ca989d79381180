"""SuperSimpleNet.

"SuperSimpleNet: Unifying Unsupervised and Supervised Learning for Fast and Reliable
Surface Defect Detection", Rolih, Fucka and Skocaj, ICPR 2024, https://arxiv.org/abs/2408.03143
(extended in the Journal of Intelligent Manufacturing and Special Equipment, 2025).
Frozen ImageNet features (WideResNet-50 layers 2 and 3, upscaled to stride 4, concatenated,
3 x 3 local average) pass a 1 x 1 feature adaptor; in training, Gaussian noise inside
Perlin masks drawn at feature resolution makes synthetic anomalies, and a segmentation
head (truncated L1 + focal loss) and a classification head (focal loss) learn to find
them. A pixel scores the segmentation logit, upsampled and blurred; an image the sigmoid of
the classification logit. Labelled anomalous training images (with masks) are used when
the training set has them (supervised mode), otherwise only the synthetic ones.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import nn

from adtool.errors import ConfigError
from adtool.models.anomaly.base import BaseAnomalyModel
from adtool.registry import MODELS
from adtool.structures import AnomalyDataSample

from .parts import FeatureAnomalyGenerator, truncated_l1_loss, xavier_init


def count_anomalous(dataset) -> tuple[int, int]:
    """(anomalous images, of which with a mask) in a dataset's ``data_info`` records."""
    get = getattr(dataset, "get_data_info", None)
    if get is None:
        return 0, 0
    infos = [get(i) for i in range(len(dataset))]
    anomalous = [d for d in infos if int(d.get("gt_label", 0)) == 1]
    return len(anomalous), sum(1 for d in anomalous if d.get("mask_path"))


@MODELS.register_module()
class SuperSimpleNet(BaseAnomalyModel):
    """Frozen backbone + upscaling neck + 1x1 adaptor + segmentation-detection head.

    The mode is chosen from the training set in :meth:`before_train`: ``'supervised'``
    when it holds labelled anomalous images (e.g. a ``Folder`` dataset with
    ``abnormal_train_dir``; their masks, when the train pipeline loads them with
    ``LoadAnomalyMask``, are segmentation targets, and an anomalous image without a mask
    trains the classification head only), ``'unsupervised'`` otherwise. Both modes add the
    feature-level synthetic anomalies.

    Args:
        backbone: Config of the frozen feature extractor (paper: WideResNet-50 levels 2, 3).
        neck: Config of the feature upscaling. Defaults to ``UpscaleConcatNeck`` (x2,
            3 x 3 average; paper).
        head: Config of the segmentation-detection head; ``in_channels`` is filled from
            the backbone. Defaults to ``SegDetHead`` (paper widths, stop-gradient on).
        generator: Keyword arguments of :class:`FeatureAnomalyGenerator`. Defaults to the
            official MVTec AD setting (std 0.015, Perlin threshold 0.2, half the masks
            emptied).
        loss_focal: Config of the focal loss of both heads (sigmoid, on logits).
            Defaults to ``FocalLoss(use_sigmoid=True, gamma=4)`` (official).
        l1_margin: Truncation of the L1 segmentation loss. Defaults to 0.5 (official).
        blur_sigma: Std in pixels of the Gaussian blur of the upsampled map. Defaults to
            4 (official).
        data_preprocessor: Config of the batch normaliser. Defaults to None.
        init_cfg: mmengine init config. Defaults to None.
    """

    def __init__(
        self,
        backbone: dict,
        neck: dict | None = None,
        head: dict | None = None,
        generator: dict | None = None,
        loss_focal: dict | None = None,
        l1_margin: float = 0.5,
        blur_sigma: float = 4.0,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        if getattr(self.backbone, "frozen", True) is False:
            raise ConfigError(
                "SuperSimpleNet's backbone is a frozen feature extractor; set "
                "model.backbone.frozen=True"
            )
        self.neck = MODELS.build(neck or dict(type="UpscaleConcatNeck"))
        channels = sum(self.backbone.out_channels)
        # The feature adaptor: a linear map of each position's features.
        self.adaptor = nn.Conv2d(channels, channels, 1)
        self.adaptor.apply(xavier_init)
        head = dict(head or dict(type="SegDetHead"))
        head.setdefault("in_channels", channels)
        self.head = MODELS.build(head)
        self.generator = FeatureAnomalyGenerator(**(generator or {}))
        focal = dict(loss_focal or dict(type="FocalLoss", use_sigmoid=True, gamma=4.0))
        # Per-position losses: the model averages over the positions that have a target.
        self.loss_focal = MODELS.build(dict(focal, reduction="none"))
        self.l1_margin = float(l1_margin)
        self.blur_sigma = float(blur_sigma)
        self.mode = "unsupervised"
        self.notes = {"mode": "not trained in this run (tested from a checkpoint)"}

    def init_weights(self) -> None:
        """Parts initialise themselves (the official Xavier scheme, ImageNet backbone)."""

    def results_info(self) -> dict:
        """What the numbers depend on (written into results.json as ``model_info``)."""
        return dict(self.notes)

    def before_train(self, train_loader) -> None:
        """Choose the mode from the training set (one log line, and results)."""
        n_anomalous, n_masked = count_anomalous(train_loader.dataset)
        self.mode = "supervised" if n_anomalous else "unsupervised"
        self.notes = {
            "mode": self.mode,
            "n_anomalous_train": n_anomalous,
            "n_anomalous_train_with_mask": n_masked,
        }
        level = logging.INFO
        message = f"SuperSimpleNet trains {self.mode}"
        if n_anomalous:
            message += f" on {n_anomalous} labelled anomalous images ({n_masked} with masks)"
            if n_masked < n_anomalous:
                level = logging.WARNING
                message += "; those without a mask train the classification head only"
        print_log(message, logger="current", level=level)

    # ------------------------------------------------------------------ networks

    def features(self, inputs: torch.Tensor) -> torch.Tensor:
        """Normalised (B, 3, H, W) images -> adapted (B, C, h, w) features."""
        with torch.no_grad():
            feats = self.neck(self.backbone(inputs))
        return self.adaptor(feats)

    # ------------------------------------------------------------------ training

    def _targets(
        self, inputs: torch.Tensor, data_samples: list[AnomalyDataSample] | None, size
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 1, h, w) masks, (B,) labels and (B, 1, 1, 1) map weights of a batch."""
        n = inputs.shape[0]
        masks = torch.zeros(n, 1, *inputs.shape[-2:], device=inputs.device)
        labels = torch.zeros(n, device=inputs.device)
        valid = torch.ones(n, 1, 1, 1, device=inputs.device)
        for i, sample in enumerate(data_samples or []):
            labels[i] = float("gt_label" in sample and int(sample.gt_label) == 1)
            if "gt_mask" in sample:
                masks[i, 0] = sample.gt_mask.to(inputs.device).float()
            elif labels[i]:
                valid[i] = 0.0  # an anomalous image without a mask: no map target
        # Bilinear downsampling then a 0.5 cut (the official code's, after DeSTSeg).
        masks = F.interpolate(masks, size=size, mode="bilinear", align_corners=False) >= 0.5
        return masks.float(), labels, valid

    def loss(self, inputs: torch.Tensor, data_samples: list[AnomalyDataSample] | None) -> dict:
        feats = self.features(inputs)
        masks, labels, valid = self._targets(inputs, data_samples, feats.shape[-2:])
        feats, masks, labels = self.generator(feats, masks, labels)
        valid = torch.cat((valid, valid)).expand_as(masks)
        seg, score = self.head(feats)
        focal_map = self.loss_focal(seg, masks)
        return dict(
            loss_l1=truncated_l1_loss(seg, masks, self.l1_margin, valid),
            loss_seg_focal=(focal_map * valid).sum() / valid.sum().clamp_min(1),
            loss_cls_focal=self.loss_focal(score, labels).mean(),
        )

    # ------------------------------------------------------------------ inference

    @torch.no_grad()
    def anomaly_outputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seg, score = self.head(self.features(inputs))
        maps = self.to_input_map(seg, inputs.shape[-2:], self.blur_sigma)
        return score.sigmoid(), maps
