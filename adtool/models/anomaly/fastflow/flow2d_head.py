"""2D normalising flows over feature maps, one per level (FastFlow, Yu et al. 2021)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from adtool.models.components.flows import all_in_one_flow, subnet_conv
from adtool.registry import MODELS

if TYPE_CHECKING:  # FrEIA (and scipy.stats) load when a flow is built
    from FrEIA.framework import SequenceINN

__all__ = ["Flow2DHead", "fastflow_flow", "subnet_conv"]


def fastflow_flow(
    shape: Sequence[int],
    flow_steps: int = 8,
    hidden_ratio: float = 1.0,
    conv3x3_only: bool = False,
    clamp: float = 2.0,
) -> SequenceINN:
    """``flow_steps`` FrEIA ``AllInOneBlock`` couplings on a (C, H, W) map.

    Even steps use 3x3 subnets (local and neighbouring context), odd steps 1x1 (per
    position), unless ``conv3x3_only``. Each block permutes channels with a fixed random
    hard permutation and clamps the affine log-scale to ``+-clamp``.
    """

    def subnet(step: int):
        kernel_size = 1 if step % 2 == 1 and not conv3x3_only else 3
        return subnet_conv(kernel_size, hidden_ratio)

    return all_in_one_flow(shape, flow_steps, subnet, clamp, permute_soft=False)


@MODELS.register_module()
class Flow2DHead(nn.Module):
    """One 2D normalising flow per feature level, mapping features to N(0, I) latents.

    Trained by maximum likelihood (:class:`FlowNLLLoss`). At test time each level gives
    the per-position likelihood ``exp(-0.5 * mean_c z^2)``; the levels' likelihoods,
    upsampled to the image, are averaged and negated into the anomaly map (official code,
    anomalib).

    Args:
        feature_shapes: (C, H, W) of each level. The model computes them from its
            backbone and input size; a config does not set them.
        flow_steps: Coupling blocks per flow. Defaults to 8 (paper: ResNet18 and
            WideResNet-50; 20 for CaiT and DeiT).
        hidden_ratio: Subnet hidden channels / subnet input channels. Defaults to 1.0
            (paper: ResNets; 0.16 for CaiT and DeiT).
        conv3x3_only: Use 3x3 subnets in every step instead of alternating 3x3 and 1x1.
            Defaults to False (paper: True only for ResNet18).
        clamp: Soft clamp of the affine log-scale. Defaults to 2.0.
    """

    def __init__(
        self,
        feature_shapes: Sequence[Sequence[int]],
        flow_steps: int = 8,
        hidden_ratio: float = 1.0,
        conv3x3_only: bool = False,
        clamp: float = 2.0,
    ) -> None:
        super().__init__()
        self.feature_shapes = [tuple(int(v) for v in shape) for shape in feature_shapes]
        self.flows = nn.ModuleList(
            fastflow_flow(shape, flow_steps, hidden_ratio, conv3x3_only, clamp)
            for shape in self.feature_shapes
        )

    def forward(
        self, features: Sequence[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Features (B, C, H, W) per level -> latents (same shapes) and log|det J| (B,)."""
        latents, log_jac_dets = [], []
        for flow, feat in zip(self.flows, features, strict=True):
            z, log_jac_det = flow(feat)
            latents.append(z)
            log_jac_dets.append(log_jac_det)
        return latents, log_jac_dets

    def reverse(self, latents: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The inverse map: latents per level -> the features they come from."""
        return [flow(z, rev=True)[0] for flow, z in zip(self.flows, latents, strict=True)]

    @staticmethod
    def anomaly_map(latents: Sequence[torch.Tensor], size: Sequence[int]) -> torch.Tensor:
        """Latents per level -> (B, H, W) map: minus the mean upsampled likelihood."""
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
        return -likelihood.squeeze(1)
