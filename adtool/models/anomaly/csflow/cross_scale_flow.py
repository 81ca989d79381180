"""The cross-scale normalising flow of CS-Flow (Rudolph et al., WACV 2022).

A FrEIA ``GraphINN`` over the feature maps of several scales at once: each block is a
fixed channel permutation shared by the scales (:class:`ParallelPermute`) and a
cross-scale affine coupling (:class:`CrossScaleCoupling`) whose scale and shift come from
fully convolutional subnets that mix neighbouring scales (:class:`CrossConvolutions`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from FrEIA.framework import GraphINN, InputNode, Node, OutputNode
from FrEIA.modules import InvertibleModule
from torch import nn

from adtool.models.components.flows import atan_soft_clamp, channel_permutation


class CrossConvolutions(nn.Module):
    """The subnet of a cross-scale coupling: per scale, conv -> LeakyReLU -> conv, plus
    the neighbouring scales' hidden maps (the coarser one upsampled, the finer one through
    a stride-2 conv), the sum scaled by a learned per-scale ``gamma``.

    ``gamma`` starts at 0, so every coupling starts as the identity (official code).

    Args:
        in_channels: Channels of each scale's input (one half of the coupling).
        out_channels: Channels of each scale's output (scale and shift of the other half).
        n_scales: Number of scales, finest first.
        hidden_channels: Hidden channels. Defaults to 1024 (paper).
        kernel_size: Kernel of every conv. Defaults to 3.
        leaky_slope: Negative slope of the LeakyReLU. Defaults to 0.1 (official code).
        use_gamma: Scale each output by a learned scalar initialised at 0. Defaults to True.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n_scales: int = 3,
        hidden_channels: int = 1024,
        kernel_size: int = 3,
        leaky_slope: float = 0.1,
        use_gamma: bool = True,
    ) -> None:
        super().__init__()
        pad = kernel_size // 2

        def conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
            return nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=pad)

        self.n_scales = n_scales
        self.conv_in = nn.ModuleList(conv(in_channels, hidden_channels) for _ in range(n_scales))
        self.conv_out = nn.ModuleList(conv(hidden_channels, out_channels) for _ in range(n_scales))
        # up[s]: scale s + 1 (coarser) -> s; down[s]: scale s (finer) -> s + 1.
        self.up = nn.ModuleList(conv(hidden_channels, out_channels) for _ in range(n_scales - 1))
        self.down = nn.ModuleList(
            conv(hidden_channels, out_channels, stride=2) for _ in range(n_scales - 1)
        )
        self.act = nn.LeakyReLU(leaky_slope)
        self.use_gamma = use_gamma
        self.gamma = nn.Parameter(torch.zeros(n_scales)) if use_gamma else None

    def forward(self, *scales: torch.Tensor) -> list[torch.Tensor]:
        """(B, in, h_s, w_s) per scale -> (B, out, h_s, w_s) per scale."""
        hidden = [self.act(conv(x)) for conv, x in zip(self.conv_in, scales, strict=True)]
        outs = []
        for s, h in enumerate(hidden):
            out = self.conv_out[s](h)
            if s + 1 < self.n_scales:
                coarser = F.interpolate(
                    hidden[s + 1], size=h.shape[-2:], mode="bilinear", align_corners=False
                )
                out = out + self.up[s](coarser)
            if s > 0:
                out = out + self.down[s - 1](hidden[s - 1])
            outs.append(out * self.gamma[s] if self.use_gamma else out)
        return outs


class ParallelPermute(InvertibleModule):
    """One fixed random channel permutation applied to every scale (log-det 0).

    The scales must share it: the coupling's subnets mix the same channel half across
    scales. The permutation is a buffer, saved with the weights.
    """

    def __init__(self, dims_in: Sequence[Sequence[int]], seed: int = 0) -> None:
        super().__init__(dims_in)
        channels = {int(d[0]) for d in dims_in}
        if len(channels) != 1:
            raise ValueError(f"ParallelPermute needs equal channels per scale, got {dims_in}")
        perm = channel_permutation(channels.pop(), seed)
        self.register_buffer("perm", perm)
        self.register_buffer("perm_inv", torch.argsort(perm))

    def forward(self, x_or_z, c=None, rev: bool = False, jac: bool = True):
        index = self.perm_inv if rev else self.perm
        return tuple(x[:, index] for x in x_or_z), x_or_z[0].new_zeros(x_or_z[0].shape[0])

    def output_dims(self, input_dims):
        return input_dims


class CrossScaleCoupling(InvertibleModule):
    """An affine coupling over all scales at once (the paper's cross-scale coupling).

    Every scale's channels are split in halves ``x1 | x2``. Forward:
    ``y1 = x1 * exp(g(s1)) + t1`` with ``(s1, t1) = F2(x2 of every scale)``, then
    ``y2 = x2 * exp(g(s2)) + t2`` with ``(s2, t2) = F1(y1 of every scale)``, where ``F1``,
    ``F2`` are :class:`CrossConvolutions` and ``g`` is the atan soft clamp; the log-det is
    ``sum g(s1) + sum g(s2)`` over every scale, position and channel.

    Args:
        dims_in: (C, H, W) per scale, finest first (FrEIA passes it).
        clamp: Soft clamp of the log-scale. Defaults to 3.0 (paper).
        hidden_channels: Subnet hidden channels. Defaults to 1024 (paper).
        kernel_size: Subnet kernel. Defaults to 3.
        leaky_slope: Subnet LeakyReLU slope. Defaults to 0.1.
        use_gamma: Subnet outputs scaled by learned scalars starting at 0. Defaults to True.
    """

    def __init__(
        self,
        dims_in: Sequence[Sequence[int]],
        clamp: float = 3.0,
        hidden_channels: int = 1024,
        kernel_size: int = 3,
        leaky_slope: float = 0.1,
        use_gamma: bool = True,
    ) -> None:
        super().__init__(dims_in)
        channels = int(dims_in[0][0])
        self.len1, self.len2 = channels // 2, channels - channels // 2
        self.clamp = float(clamp)
        kw = dict(
            n_scales=len(dims_in),
            hidden_channels=hidden_channels,
            kernel_size=kernel_size,
            leaky_slope=leaky_slope,
            use_gamma=use_gamma,
        )
        self.subnet1 = CrossConvolutions(self.len1, 2 * self.len2, **kw)  # y1 -> (s2, t2)
        self.subnet2 = CrossConvolutions(self.len2, 2 * self.len1, **kw)  # x2 -> (s1, t1)

    def _affine(self, subnet: CrossConvolutions, cond: Sequence[torch.Tensor], split: int):
        outs = subnet(*cond)
        return [atan_soft_clamp(r[:, :split], self.clamp) for r in outs], [
            r[:, split:] for r in outs
        ]

    def forward(self, x_or_z, c=None, rev: bool = False, jac: bool = True):
        first = [x[:, : self.len1] for x in x_or_z]
        second = [x[:, self.len1 :] for x in x_or_z]
        if not rev:
            s1, t1 = self._affine(self.subnet2, second, self.len1)
            first = [x * torch.exp(s) + t for x, s, t in zip(first, s1, t1, strict=True)]
            s2, t2 = self._affine(self.subnet1, first, self.len2)
            second = [x * torch.exp(s) + t for x, s, t in zip(second, s2, t2, strict=True)]
        else:
            s2, t2 = self._affine(self.subnet1, first, self.len2)
            second = [(y - t) * torch.exp(-s) for y, s, t in zip(second, s2, t2, strict=True)]
            s1, t1 = self._affine(self.subnet2, second, self.len1)
            first = [(y - t) * torch.exp(-s) for y, s, t in zip(first, s1, t1, strict=True)]
        log_det = sum(s.flatten(1).sum(1) for s in (*s1, *s2))
        outs = tuple(torch.cat(halves, 1) for halves in zip(first, second, strict=True))
        return outs, -log_det if rev else log_det

    def output_dims(self, input_dims):
        return input_dims


def cross_scale_flow(
    shapes: Sequence[Sequence[int]],
    coupling_blocks: int = 4,
    clamp: float = 3.0,
    hidden_channels: int = 1024,
    kernel_sizes: Sequence[int] | None = None,
    leaky_slope: float = 0.1,
    use_gamma: bool = True,
) -> GraphINN:
    """The CS-Flow graph: ``coupling_blocks`` x (permute, cross-scale coupling).

    Args:
        shapes: (C, H, W) per scale, finest first; each coarser scale is
            ``ceil(finer / 2)`` in H and W.
        coupling_blocks: Number of blocks. Defaults to 4 (paper).
        clamp: Soft clamp of the log-scales. Defaults to 3.0 (paper).
        hidden_channels: Subnet hidden channels. Defaults to 1024 (paper).
        kernel_sizes: Subnet kernel per block; None gives the official ``3, ..., 3, 5``.
        leaky_slope: Subnet LeakyReLU slope. Defaults to 0.1.
        use_gamma: Zero-initialised output scales in the subnets. Defaults to True.

    Returns:
        A ``GraphINN``: ``flow([x_0, x_1, ...]) -> ((z_0, z_1, ...), log|det J|)`` and
        ``flow(zs, rev=True)`` the inverse.
    """
    if kernel_sizes is None:
        kernel_sizes = [3] * (coupling_blocks - 1) + [5]
    if len(kernel_sizes) != coupling_blocks:
        raise ValueError(
            f"kernel_sizes needs one entry per coupling block ({coupling_blocks}), "
            f"got {list(kernel_sizes)}"
        )
    inputs = [
        InputNode(*(int(v) for v in shape), name=f"input_{s}") for s, shape in enumerate(shapes)
    ]
    nodes: list = list(inputs)
    last = [(node, 0) for node in inputs]
    for k in range(coupling_blocks):
        permute = Node(last, ParallelPermute, {"seed": k}, name=f"permute_{k}")
        coupling = Node(
            [(permute, s) for s in range(len(shapes))],
            CrossScaleCoupling,
            dict(
                clamp=clamp,
                hidden_channels=hidden_channels,
                kernel_size=int(kernel_sizes[k]),
                leaky_slope=leaky_slope,
                use_gamma=use_gamma,
            ),
            name=f"coupling_{k}",
        )
        nodes += [permute, coupling]
        last = [(coupling, s) for s in range(len(shapes))]
    nodes += [OutputNode([out], name=f"output_{s}") for s, out in enumerate(last)]
    return GraphINN(nodes, force_tuple_output=True)
