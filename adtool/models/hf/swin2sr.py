"""Swin2SR super-resolution wrapper.

Paper: "Swin2SR: SwinV2 Transformer for Compressed Image Super-Resolution and Restoration",
Conde et al., ECCV Workshops 2022, https://arxiv.org/abs/2209.11345. Residual Swin-V2
transformer blocks on shallow conv features, then a pixel-shuffle upsampler; trained with a
pixel L1 loss between the upscaled image and the high-resolution target.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.structures import BaseDataElement

from adtool.errors import ConfigError, DataError
from adtool.models.hf.base import HFTaskModel
from adtool.registry import MODELS


@MODELS.register_module()
class Swin2SRSuperResolution(HFTaskModel):
    """``transformers.Swin2SRForImageSuperResolution`` with the L1 loss computed here.

    transformers' model refuses ``labels`` (it has no training loss); this wrapper
    computes the paper's pixel L1 between the prediction and the HR target in [0, 1].

    Args:
        pretrained: Folder written by ``save_pretrained`` (e.g.
            ``'backbones/hf/swin2SR-classical-sr-x2-64'``). Defaults to None.
        hf_config: ``Swin2SRConfig`` kwargs (random init, or overrides). Defaults to None.
        residual: ``'bicubic'`` adds the bicubic upscale of the input to the network's
            output (global residual learning, VDSR-style), so a small random-init model
            starts at bicubic quality (its last convolution is zeroed when not loading
            pretrained weights) and learns the detail; None is the paper's model,
            needed for its pretrained weights. Defaults to None.
        data_preprocessor: Batching/normalisation config. Defaults to inputs in [0, 1]
            (``mean=0, std=255``), which Swin2SR expects.
        init_cfg: mmengine init config. Defaults to None.
    """

    task = "super_resolution"
    hf_model_class = "Swin2SRForImageSuperResolution"
    hf_config_class = "Swin2SRConfig"
    hub_id = "caidas/swin2SR-classical-sr-x2-64"

    def __init__(
        self,
        pretrained: str | None = None,
        hf_config: dict | None = None,
        residual: str | None = None,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(
                type="HFDataPreprocessor",
                _scope_="adtool",
                mean=[0.0, 0.0, 0.0],
                std=[255.0, 255.0, 255.0],
            )
        if residual not in (None, "bicubic"):
            raise ConfigError(
                f"Swin2SRSuperResolution residual must be None or 'bicubic', got {residual!r}"
            )
        super().__init__(
            pretrained=pretrained,
            hf_config=hf_config,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg,
        )
        self.residual = residual
        self.scale = int(self.model.config.upscale)
        if residual == "bicubic" and pretrained is None:
            self._zero_last_conv()

    def _zero_last_conv(self) -> None:
        """Start exactly at bicubic quality: the residual branch outputs zero at init."""
        convs = [m for m in self.model.modules() if isinstance(m, torch.nn.Conv2d)]
        torch.nn.init.zeros_(convs[-1].weight)
        if convs[-1].bias is not None:
            torch.nn.init.zeros_(convs[-1].bias)

    def _forward(self, inputs: torch.Tensor, data_samples=None) -> torch.Tensor:
        """(B, 3, h, w) LR in [0, 1] -> (B, 3, h*scale, w*scale) prediction (not clamped)."""
        out = self.model(pixel_values=inputs).reconstruction
        if self.residual == "bicubic":
            bicubic = F.interpolate(
                inputs, scale_factor=self.scale, mode="bicubic", align_corners=False
            )
            # The network adds its image mean back at the end; as a residual it must not.
            out = out - self.model.swin2sr.mean.to(out) + bicubic
        return out

    def _targets(self, data_samples: list[BaseDataElement], pred: torch.Tensor) -> torch.Tensor:
        target = torch.stack([torch.as_tensor(s.gt_img) for s in data_samples]).to(pred)
        if target.shape != pred.shape:
            raise DataError(
                f"HR target {tuple(target.shape[-2:])} is not {self.scale}x the LR input "
                f"({tuple(pred.shape[-2:])} predicted); make HR sizes divisible by {self.scale}"
            )
        return target

    def loss(self, inputs: torch.Tensor, data_samples: list[BaseDataElement]) -> dict:
        pred = self._forward(inputs)
        return {"loss": F.l1_loss(pred, self._targets(data_samples, pred))}

    def predict(
        self, inputs: torch.Tensor, data_samples: list[BaseDataElement]
    ) -> list[BaseDataElement]:
        pred = self._forward(inputs).clamp(0.0, 1.0).float().cpu()
        for sample, img in zip(data_samples, pred):
            h, w = sample.metainfo.get("img_shape", img.shape[-2:])
            # Inputs padded to the batch's largest image: keep this image's own area.
            sample.pred_img = img[:, : h * self.scale, : w * self.scale]
        return data_samples
