"""Normalising-flow math shared by the flow methods (FastFlow, CFlow).

FrEIA builds the invertible blocks; this module keeps what the methods share around
them: the coupling subnets, a stack of ``AllInOneBlock`` couplings, the Gaussian
log-likelihood of a flow's output, and the 2D sinusoidal positional encoding that
conditions CFlow's decoders.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from FrEIA.framework import SequenceINN

#: ``-0.5 * log(2 pi)``: the per-dimension constant of a standard normal's log-density.
LOG_NORMAL_CONST = -0.5 * math.log(2 * math.pi)


def subnet_conv(kernel_size: int, hidden_ratio: float) -> Callable[[int, int], nn.Module]:
    """A FrEIA subnet constructor: conv k x k -> ReLU -> conv k x k, spatial size kept.

    The hidden width is ``int(in_channels * hidden_ratio)``; the subnet predicts the
    coupling's scale and shift for every position from the other half's channels.
    """

    def build(in_channels: int, out_channels: int) -> nn.Module:
        hidden = max(1, int(in_channels * hidden_ratio))
        return nn.Sequential(
            nn.Conv2d(in_channels, hidden, kernel_size, padding="same"),
            nn.ReLU(),
            nn.Conv2d(hidden, out_channels, kernel_size, padding="same"),
        )

    return build


def subnet_fc(hidden_ratio: float = 2.0) -> Callable[[int, int], nn.Module]:
    """A FrEIA subnet constructor: linear -> ReLU -> linear on vectors (CFlow's ``subnet_fc``).

    The hidden width is ``int(in_features * hidden_ratio)``; for a conditional coupling
    ``in_features`` is half the channels plus the condition's size.
    """

    def build(in_features: int, out_features: int) -> nn.Module:
        hidden = max(1, int(in_features * hidden_ratio))
        return nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, out_features)
        )

    return build


def all_in_one_flow(
    shape: Sequence[int],
    steps: int,
    subnet: Callable[[int], Callable[[int, int], nn.Module]],
    clamp: float,
    permute_soft: bool = False,
    global_affine_type: str = "SOFTPLUS",
    cond_dim: int | None = None,
) -> SequenceINN:
    """``steps`` FrEIA ``AllInOneBlock`` couplings on inputs of ``shape``.

    Args:
        shape: Shape of one input without the batch dimension, (C, H, W) or (C,).
        steps: Number of coupling blocks.
        subnet: ``step -> subnet constructor``, so that methods may alternate subnets.
        clamp: Soft clamp of the affine log-scale.
        permute_soft: Random orthogonal (True) or hard (False) channel permutations.
            FrEIA draws them from numpy's global generator.
        global_affine_type: FrEIA's global affine activation. Defaults to ``'SOFTPLUS'``
            (FrEIA's default).
        cond_dim: Size of a condition vector every block receives (``flow(x, c=[cond])``);
            None for an unconditional flow.
    """
    # FrEIA imports scipy.stats (about 1 s): loaded here, when a flow is built, so that
    # registering the flow methods costs nothing to a run that does not use them.
    from FrEIA.framework import SequenceINN
    from FrEIA.modules import AllInOneBlock

    flow = SequenceINN(*shape)
    cond = {} if cond_dim is None else dict(cond=0, cond_shape=(int(cond_dim),))
    for step in range(steps):
        flow.append(
            AllInOneBlock,
            subnet_constructor=subnet(step),
            affine_clamping=clamp,
            global_affine_type=global_affine_type,
            permute_soft=permute_soft,
            **cond,
        )
    return flow


def gaussian_log_likelihood(
    z: torch.Tensor, log_jac_det: torch.Tensor, constant: bool = True
) -> torch.Tensor:
    """``log p(x) = log N(z; 0, I) + log|det J|`` per sample, z = flow(x).

    Args:
        z: Latents (N, ...); every non-batch element is one dimension.
        log_jac_det: ``log|det dz/dx|`` per sample, (N,).
        constant: Include ``-0.5 * D * log(2 pi)``; without it the value is the
            log-likelihood up to a constant (same gradient).

    Returns:
        (N,) log-likelihoods.
    """
    z = z.flatten(1)
    log_p = -0.5 * z.pow(2).sum(1) + log_jac_det
    return log_p + z.shape[1] * LOG_NORMAL_CONST if constant else log_p


def atan_soft_clamp(log_scale: torch.Tensor, clamp: float) -> torch.Tensor:
    """FrEIA's ``ATAN`` soft clamp of an affine log-scale: ``clamp * 0.636 * atan(s / clamp)``.

    Smooth, odd and close to the identity near 0, bounded by about ``+-clamp`` (0.636 is
    FrEIA's and CS-Flow's rounding of 2 / pi). ``clamp <= 0`` turns it off.
    """
    if clamp <= 0:
        return log_scale
    return clamp * 0.636 * torch.atan(log_scale / clamp)


def channel_permutation(channels: int, seed: int) -> torch.Tensor:
    """A fixed random permutation of ``channels`` indices from its own seeded generator.

    Unlike FrEIA's permutations it does not draw from numpy's global generator, so a
    flow built twice with the same seeds permutes the same way whatever ran before.
    """
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randperm(int(channels), generator=generator)


def flatten_latents(latents: Sequence[torch.Tensor]) -> torch.Tensor:
    """Latents of several levels or scales (N, ...) each -> one (N, D) tensor, D their sum."""
    return torch.cat([z.flatten(1) for z in latents], dim=1)


def positional_encoding_2d(dim: int, height: int, width: int) -> torch.Tensor:
    """(dim, height, width) 2D sinusoidal positional encoding (CFlow's condition).

    The first half of the channels encodes the column, the second half the row, each as
    interleaved ``sin(pos * f_k)``, ``cos(pos * f_k)`` with ``f_k = 10000^(-2k / (dim/2))``
    (the Transformer's frequencies over ``dim / 2`` channels), as the official CFlow code.

    Args:
        dim: Number of channels, a multiple of 4.
        height: Rows.
        width: Columns.
    """
    if dim % 4 != 0:
        raise ValueError(f"positional encoding size must be a multiple of 4, got {dim}")
    half = dim // 2
    freqs = torch.exp(torch.arange(0.0, half, 2) * -(math.log(1e4) / half))  # (half/2,)
    cols = torch.arange(float(width))[:, None] * freqs  # (W, half/2)
    rows = torch.arange(float(height))[:, None] * freqs  # (H, half/2)
    enc = torch.zeros(dim, height, width)
    enc[0:half:2] = cols.sin().T[:, None, :].expand(-1, height, -1)
    enc[1:half:2] = cols.cos().T[:, None, :].expand(-1, height, -1)
    enc[half::2] = rows.sin().T[:, :, None].expand(-1, -1, width)
    enc[half + 1 :: 2] = rows.cos().T[:, :, None].expand(-1, -1, width)
    return enc
