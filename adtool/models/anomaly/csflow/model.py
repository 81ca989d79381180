"""CS-Flow.

"Fully Convolutional Cross-Scale-Flows for Image-based Defect Detection", Rudolph,
Wehrbein, Rosenhahn and Wandt, WACV 2022, https://arxiv.org/abs/2110.02855.
One normalising flow maps a frozen EfficientNet's feature maps of the image at three
scales jointly to a standard normal; an image scores the mean of its squared latents
over all scales, a pixel the mean squared latent of the finest scale at its position.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from adtool.errors import ConfigError
from adtool.models.anomaly.base import BaseAnomalyModel
from adtool.models.backbones.feature_info import size2
from adtool.models.components.flows import flatten_latents, gaussian_log_likelihood
from adtool.registry import MODELS


@MODELS.register_module()
class CSFlow(BaseAnomalyModel):
    """Frozen backbone at ``n_scales`` input scales + one cross-scale flow.

    The image at ``input_size`` and its copies resized (nearest, as the official code) to
    ``input_size / 2^s`` go through the same one-level backbone; the flow
    (:func:`cross_scale_flow`) is trained by maximum likelihood with the official loss,
    the negative log-likelihood per latent dimension
    ``mean_batch(0.5 * ||z||^2 - log|det J|) / D`` over the concatenated scales.

    Args:
        backbone: Config of the frozen one-level feature extractor
            (:class:`TimmStageBackbone`).
        n_scales: Input scales (each half the previous). Defaults to 3 (paper).
        coupling_blocks: Permute + cross-scale coupling blocks. Defaults to 4 (paper).
        clamp: Soft clamp of the affine log-scales. Defaults to 3.0 (paper).
        hidden_channels: Hidden channels of the cross-convolution subnets. Defaults to
            1024 (paper).
        kernel_sizes: Subnet kernel per block; None gives the official ``3, 3, 3, 5``.
            Defaults to None.
        leaky_slope: LeakyReLU slope in the subnets. Defaults to 0.1 (official code).
        use_gamma: Zero-initialised learned output scales in the subnets, so the flow
            starts as the identity. Defaults to True (official code).
        blur_sigma: Gaussian blur (pixels) of the upsampled map. Defaults to 0.0 (paper:
            none).
        input_size: Size (H, W) or side of the finest scale; must match the pipeline's
            ``Resize``. Defaults to 768 (paper).
        data_preprocessor: Config of the batch normaliser. Defaults to None.
        init_cfg: mmengine init config. Defaults to None.
    """

    frozen_parts = ("backbone",)

    def __init__(
        self,
        backbone: dict,
        n_scales: int = 3,
        coupling_blocks: int = 4,
        clamp: float = 3.0,
        hidden_channels: int = 1024,
        kernel_sizes: Sequence[int] | None = None,
        leaky_slope: float = 0.1,
        use_gamma: bool = True,
        blur_sigma: float = 0.0,
        input_size: int | Sequence[int] = 768,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if n_scales < 1 or coupling_blocks < 1:
            raise ConfigError(
                f"CSFlow model.n_scales and model.coupling_blocks must be >= 1, got "
                f"{n_scales} and {coupling_blocks}"
            )
        if kernel_sizes is not None and len(kernel_sizes) != coupling_blocks:
            raise ConfigError(
                f"CSFlow model.kernel_sizes needs one kernel per coupling block "
                f"({coupling_blocks}), got {list(kernel_sizes)}; or set it to None"
            )
        self.input_size = size2(input_size)
        self.n_scales = int(n_scales)
        self.blur_sigma = float(blur_sigma)
        self.backbone = MODELS.build(backbone)
        if len(self.backbone.out_channels) != 1:
            raise ConfigError(
                f"CSFlow needs a backbone with one feature level, got "
                f"{len(self.backbone.out_channels)}; use TimmStageBackbone or one out_index"
            )
        self.scale_sizes = [
            (self.input_size[0] // 2**s, self.input_size[1] // 2**s) for s in range(n_scales)
        ]
        self.feature_shapes = [self.backbone.feature_shapes(size)[0] for size in self.scale_sizes]
        self._check_scales()
        # The flow's modules subclass FrEIA's (which imports scipy.stats): loaded when
        # a CS-Flow is built, not when the method registers.
        from .cross_scale_flow import cross_scale_flow

        self.flow = cross_scale_flow(
            self.feature_shapes,
            coupling_blocks=coupling_blocks,
            clamp=clamp,
            hidden_channels=hidden_channels,
            kernel_sizes=kernel_sizes,
            leaky_slope=leaky_slope,
            use_gamma=use_gamma,
        )

    def _check_scales(self) -> None:
        """Each coarser map must be what a stride-2 conv makes of the finer one."""
        for s in range(1, self.n_scales):
            finer, coarser = self.feature_shapes[s - 1], self.feature_shapes[s]
            expected = (math.ceil(finer[1] / 2), math.ceil(finer[2] / 2))
            if min(coarser[1:]) < 1 or tuple(coarser[1:]) != expected:
                side = self.backbone.reductions[0] * 2 ** (self.n_scales - 1)
                raise ConfigError(
                    f"CSFlow model.input_size {self.input_size[0]}x{self.input_size[1]} gives "
                    f"feature maps {[tuple(f[1:]) for f in self.feature_shapes]} at its "
                    f"{self.n_scales} scales, which do not halve; use a multiple of {side}"
                )

    def results_info(self) -> dict:
        """What the numbers depend on (written into results.json as ``model_info``)."""
        return dict(
            feature_maps=[list(shape) for shape in self.feature_shapes],
            flow_parameters=sum(p.numel() for p in self.flow.parameters()),
        )

    # ------------------------------------------------------------------ the method

    def frozen_features(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        """The backbone's map at every scale: cached across epochs by the engine when frozen."""
        return self.features(inputs)

    def loss_from_features(
        self, features: list[torch.Tensor], inputs: torch.Tensor, data_samples=None
    ) -> dict[str, torch.Tensor]:
        latents, log_jac_det = self.flow(features)
        return dict(loss=self.nll_per_dim(latents, log_jac_det))

    def features(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> one (B, C, h_s, w_s) map per scale, finest first."""
        self.check_input_size(inputs)
        feats = []
        for s, size in enumerate(self.scale_sizes):
            scaled = inputs if s == 0 else F.interpolate(inputs, size=size, mode="nearest")
            feats.append(self.backbone(scaled)[0])
        return feats

    def latents(self, inputs: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """(B, 3, H, W) -> latents per scale and the flow's log|det J| per image (B,)."""
        return self.flow(self.features(inputs))

    @staticmethod
    def nll_per_dim(latents: Sequence[torch.Tensor], log_jac_det: torch.Tensor) -> torch.Tensor:
        """The official loss: ``mean_batch(0.5 * ||z||^2 - log|det J|) / D``, all scales."""
        flat = flatten_latents(latents)
        return -gaussian_log_likelihood(flat, log_jac_det, constant=False).mean() / flat.shape[1]

    @staticmethod
    def image_scores(latents: Sequence[torch.Tensor]) -> torch.Tensor:
        """(B,) scores: ``mean(z^2 / 2)`` over every latent of every scale (official)."""
        return flatten_latents(latents).pow(2).mean(1) / 2

    @staticmethod
    def latent_map(latents: Sequence[torch.Tensor]) -> torch.Tensor:
        """(B, h_0, w_0) map: ``mean_c(z^2 / 2)`` of the finest scale at each position."""
        return latents[0].pow(2).mean(1) / 2

    @torch.no_grad()
    def anomaly_outputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latents, _ = self.latents(inputs)
        maps = self.to_input_map(self.latent_map(latents), inputs.shape[-2:], self.blur_sigma)
        return self.image_scores(latents), maps
