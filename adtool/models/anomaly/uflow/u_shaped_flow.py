"""U-Flow's U-shaped normalising flow over multi-scale features (FrEIA ``GraphINN``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from adtool.errors import ConfigError
from adtool.models.components.flows import subnet_conv
from adtool.registry import MODELS

if TYPE_CHECKING:  # FrEIA (and scipy.stats) load when the flow is built
    from FrEIA import framework as ff

__all__ = ["UShapedFlowHead"]


@MODELS.register_module()
class UShapedFlowHead(nn.Module):
    """One invertible graph from the feature pyramid to latents, coarse to fine.

    Starting at the coarsest scale: a flow stage (``flow_steps`` ``AllInOneBlock``
    couplings, 3x3 and 1x1 convolution subnets in turn); its output is split along the
    channels, ``C // 8 * 4`` channels go up (FrEIA's invertible ``IRevNetUpsampling``:
    4 channels -> 1 channel at twice the resolution) and are concatenated with the next
    finer scale's features, the rest leaves as that scale's latent. The finest stage's whole
    output is the finest latent. Every operation is invertible, so the latents of all
    scales together are one bijection of the features, trained by maximum likelihood, and
    independent under the fitted N(0, I) within and across scales.

    Args:
        feature_shapes: (C, H, W) of each level, finest first; each level must have twice
            the height and width of the next. The model computes them from its backbone.
        flow_steps: Coupling blocks per stage. Defaults to 4 (paper, official code).
        hidden_ratio: Subnet hidden channels / subnet input channels. Defaults to 1.0.
        clamp: Soft clamp of the affine log-scale. Defaults to 2.0.
        permute_soft: Random orthogonal (True) or hard (False) channel permutations.
            Defaults to False.
    """

    def __init__(
        self,
        feature_shapes: Sequence[Sequence[int]],
        flow_steps: int = 4,
        hidden_ratio: float = 1.0,
        clamp: float = 2.0,
        permute_soft: bool = False,
    ) -> None:
        super().__init__()
        self.feature_shapes = [tuple(int(v) for v in shape) for shape in feature_shapes]
        for fine, coarse in zip(self.feature_shapes, self.feature_shapes[1:]):
            if fine[1:] != (2 * coarse[1], 2 * coarse[2]):
                raise ConfigError(
                    f"UShapedFlowHead needs each feature level twice the size of the next; got "
                    f"{self.feature_shapes}; pick backbone levels whose strides double "
                    "(e.g. out_indices=(1, 2, 3)) and an input size divisible by the largest stride"
                )
        self.flow_steps = flow_steps
        self.hidden_ratio = hidden_ratio
        self.clamp = clamp
        self.permute_soft = permute_soft
        self.flow = self._build()

    def _stage(self, node: ff.Node, level: int) -> list[ff.Node]:
        from FrEIA import framework as ff
        from FrEIA import modules as fm

        nodes = []
        for step in range(self.flow_steps):
            node = ff.Node(
                node,
                fm.AllInOneBlock,
                dict(
                    subnet_constructor=subnet_conv(3 if step % 2 == 0 else 1, self.hidden_ratio),
                    affine_clamping=self.clamp,
                    permute_soft=self.permute_soft,
                ),
                name=f"stage{level}_step{step}",
            )
            nodes.append(node)
        return nodes

    def _build(self) -> ff.GraphINN:
        from FrEIA import framework as ff
        from FrEIA import modules as fm

        inputs = [
            ff.InputNode(*shape, name=f"features{i}") for i, shape in enumerate(self.feature_shapes)
        ]
        nodes, outputs = [], {}
        last = inputs[-1]
        for level in reversed(range(1, len(inputs))):
            stage = self._stage(last, level)
            channels = stage[-1].output_dims[0][0]
            up_channels = channels // 8 * 4
            if up_channels == 0 or up_channels == channels:
                raise ConfigError(
                    f"UShapedFlowHead: level {level} has {channels} channels, too few to split "
                    "and upsample (at least 8 are needed); use a backbone level with more channels"
                )
            split = ff.Node(
                stage[-1],
                fm.Split,
                dict(section_sizes=(up_channels, channels - up_channels), dim=0),
                name=f"split{level}",
            )
            outputs[level] = ff.OutputNode(split.out1, name=f"latent{level}")
            up = ff.Node(split.out0, fm.IRevNetUpsampling, {}, name=f"up{level}")
            last = ff.Node(
                [inputs[level - 1].out0, up.out0], fm.Concat, dict(dim=0), name=f"cat{level}"
            )
            nodes += [*stage, split, up, last]
        stage = self._stage(last, 0)
        outputs[0] = ff.OutputNode(stage[-1], name="latent0")
        nodes += stage
        return ff.GraphINN(
            inputs + nodes + [outputs[i] for i in range(len(inputs))], force_tuple_output=True
        )

    def forward(self, features: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Features (B, C_l, H_l, W_l) per level -> latents per level and log|det J| (B,)."""
        latents, log_jac_det = self.flow(list(features))
        return list(latents), log_jac_det

    def reverse(self, latents: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The inverse: latents per level -> the features they come from."""
        features, _ = self.flow(list(latents), rev=True)
        return list(features)

    def latent_shapes(self) -> list[tuple[int, int, int]]:
        """(C, H, W) of each level's latent, finest first."""
        return [tuple(int(v) for v in dims) for dims in self.flow.global_out_shapes]
