"""Dinomaly.

"Dinomaly: The Less Is More Philosophy in Multi-Class Unsupervised Anomaly Detection",
Guo, Lu, Jia, Zhang, Li, Zhao, Wang, CVPR 2025, https://arxiv.org/abs/2405.14325. A
frozen DINOv2-with-registers ViT encodes the image; the tokens of its middle blocks are
averaged, corrupted by a dropout bottleneck and restored by a decoder of linear-attention
transformer blocks; a position scores the sum over two layer groups of 1 - cosine between
the group-averaged encoder and decoder tokens (blurred), an image the mean of its top 1 %.
One model is trained on every category at once (``--multi-class``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from mmengine.logging import MessageHub

from adtool.errors import ConfigError
from adtool.models.anomaly.base import BaseAnomalyModel
from adtool.models.backbones.feature_info import fill_from_backbone
from adtool.registry import MODELS
from adtool.structures import AnomalyDataSample


def fuse(features: Sequence[torch.Tensor], indices: Sequence[int]) -> torch.Tensor:
    """The mean of ``features[i]`` over ``indices`` (Dinomaly's layer fusion)."""
    return torch.stack([features[i] for i in indices]).mean(0)


def top_ratio_mean(maps: torch.Tensor, ratio: float) -> torch.Tensor:
    """(B, H, W) maps -> (B,) mean of each map's highest ``ratio`` of pixels (at least one;
    ``ratio`` 0 is the maximum)."""
    flat = maps.flatten(1)
    k = max(1, int(flat.shape[1] * ratio))
    return flat.topk(k, dim=1).values.mean(1)


@MODELS.register_module()
class Dinomaly(BaseAnomalyModel):
    """Frozen ViT encoder + :class:`NoisyBottleneck` + :class:`LinearAttentionDecoder`.

    The encoder (``ViTTokenBackbone`` with ``block_indices`` and ``prefix_tokens=True``)
    returns the token sequences of its middle blocks, class and register tokens included.
    Their mean enters the bottleneck; the decoder's block outputs, last first, are matched
    with the encoder's blocks, first first. ``groups`` lists which of them are averaged
    into each compared pair (paper: the first four and the last four). The class and
    register tokens go through the decoder but are not compared.

    Args:
        backbone: Config of the frozen encoder (paper: DINOv2-reg ViT-B/14, blocks 2-9).
        neck: Config of the bottleneck (``NoisyBottleneck``); its width is the encoder's.
        decoder: Config of the decoder (``LinearAttentionDecoder``); width and heads are
            the encoder's unless set.
        head: Config of the map head (paper: ``FeatureDistanceHead`` with
            ``distance='cosine', fusion='sum'``).
        loss: Config of the training loss (``LooseCosineLoss``).
        groups: Indices of the encoder blocks (and reversed decoder blocks) averaged into
            each group. Defaults to ((0, 1, 2, 3), (4, 5, 6, 7)) (paper).
        blur_sigma: Std of the Gaussian smoothing of the map, in pixels. Defaults to 4
            (official code).
        max_ratio: Image score = mean of the map's top ``max_ratio`` of pixels. Defaults
            to 0.01 (official code).
        data_preprocessor: Config of the batch normaliser. Defaults to None.
        init_cfg: mmengine init config. Defaults to None.
    """

    def __init__(
        self,
        backbone: dict,
        neck: dict,
        decoder: dict,
        head: dict,
        loss: dict,
        groups: Sequence[Sequence[int]] = ((0, 1, 2, 3), (4, 5, 6, 7)),
        blur_sigma: float = 4.0,
        max_ratio: float = 0.01,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        if getattr(self.backbone, "frozen", True) is False:
            raise ConfigError("Dinomaly's encoder must be frozen; set model.backbone.frozen=True")
        if not getattr(self.backbone, "prefix_tokens", False):
            raise ConfigError(
                "Dinomaly needs the encoder's token sequences; use model.backbone="
                "dict(type='ViTTokenBackbone', prefix_tokens=True, block_indices=[...])"
            )
        self.backbone.requires_grad_(False)
        width = self.backbone.out_channels[0]
        heads = int(self.backbone.model.blocks[0].attn.num_heads)
        self.neck = MODELS.build(fill_from_backbone(neck, self.backbone, in_channels=width))
        self.decoder = MODELS.build(
            fill_from_backbone(decoder, self.backbone, in_channels=width, num_heads=heads)
        )
        self.head = MODELS.build(head)
        self.criterion = MODELS.build(loss)
        n_enc, n_dec = len(self.backbone.out_channels), len(self.decoder.blocks)
        self.groups = [list(g) for g in groups]
        valid = all(g and all(0 <= i < min(n_enc, n_dec) for i in g) for g in self.groups)
        if not self.groups or not valid:
            raise ConfigError(
                f"Dinomaly groups={groups} must list indices below the {n_enc} encoder blocks "
                f"and the {n_dec} decoder blocks; e.g. groups=[[0, 1, 2, 3], [4, 5, 6, 7]]"
            )
        self.blur_sigma = blur_sigma
        self.max_ratio = max_ratio

    def train(self, mode: bool = True) -> Dinomaly:
        super().train(mode)
        self.backbone.eval()  # frozen encoder; the bottleneck's dropout trains
        return self

    def _to_maps(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """(B, P + h * w, C) token sequence -> (B, C, h, w) map of the patch tokens."""
        b, _, c = tokens.shape
        patches = tokens[:, self.backbone.num_prefix_tokens :]
        return patches.transpose(1, 2).reshape(b, c, *grid)

    def features(self, inputs: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Group-averaged encoder maps (no gradient) and their restorations, (B, C, h, w)."""
        patch = self.backbone.reductions[0]
        if inputs.shape[-2] % patch or inputs.shape[-1] % patch:
            h, w = inputs.shape[-2:]
            raise ConfigError(
                f"Dinomaly input {h}x{w} is not a multiple of the encoder's patch size {patch}; "
                f"resize or crop to a multiple, e.g. {h // patch * patch} px"
            )
        with torch.no_grad():
            encoded = self.backbone(inputs)
        restored = self.decoder(self.neck(fuse(encoded, range(len(encoded)))))[::-1]
        _, h, w = self.backbone.feature_shapes(inputs.shape[-2:])[0]
        enc = [self._to_maps(fuse(encoded, g), (h, w)) for g in self.groups]
        dec = [self._to_maps(fuse(restored, g), (h, w)) for g in self.groups]
        return enc, dec

    def loss(self, inputs: torch.Tensor, data_samples: list[AnomalyDataSample] | None) -> dict:
        encoded, restored = self.features(inputs)
        # The runner's iteration drives the warm-up of the hard-mining fraction.
        iteration = MessageHub.get_current_instance().get_info("iter")
        return dict(loss=self.criterion(encoded, restored, iteration=iteration))

    @torch.no_grad()
    def anomaly_outputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        encoded, restored = self.features(inputs)
        maps = self.head(encoded, restored, inputs.shape[-2:])
        maps = self.to_input_map(maps, inputs.shape[-2:], self.blur_sigma)
        return top_ratio_mean(maps, self.max_ratio), maps

    def results_info(self) -> dict:
        """The encoder and its weights file (None: random weights)."""
        return {
            "encoder": self.backbone.arch,
            "encoder_blocks": list(self.backbone.block_indices),
            "encoder_weights": getattr(self.backbone, "weights_path", None),
        }
