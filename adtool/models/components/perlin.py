"""Perlin noise and the Perlin-noise masks of synthetic-anomaly methods.

DRAEM (Zavrtanik et al., ICCV 2021, arXiv 2108.07610) cuts its training anomalies with a
thresholded 2D Perlin noise whose lattice resolution is drawn per image (``2**k`` cells per
side, ``k`` in ``[0, 6)``); DSR and SuperSimpleNet reuse the same masks. One vectorised
implementation, over the batch and the pixels: each image may have its own resolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def _fade(t: torch.Tensor) -> torch.Tensor:
    """Perlin's quintic interpolant ``6t^5 - 15t^4 + 10t^3`` (zero 1st/2nd derivative at 0, 1)."""
    return t * t * t * (t * (t * 6 - 15) + 10)


def perlin_noise(
    batch: int,
    size: Sequence[int],
    res: torch.Tensor | Sequence[Sequence[int]] | Sequence[int],
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """2D gradient (Perlin) noise, values in about [-1, 1].

    A random unit gradient sits on every node of a ``res_y x res_x`` lattice spread over
    the image; a pixel interpolates (quintic fade) the dot products of its offsets to the
    four surrounding nodes with their gradients. Any image size works (the lattice need
    not divide it).

    Args:
        batch: Number of noise images B.
        size: (H, W) of each image.
        res: Lattice cells per side (res_y, res_x): one pair for every image, or a
            (B, 2) tensor / list, one pair per image.
        generator: torch generator for reproducible noise. Defaults to None (global RNG).

    Returns:
        (B, H, W) float32 noise.
    """
    height, width = int(size[0]), int(size[1])
    res = torch.as_tensor(res, dtype=torch.long)
    if res.ndim == 1:
        res = res.expand(batch, 2)
    if res.shape != (batch, 2) or bool((res < 1).any()):
        raise ValueError(f"res must be (res_y, res_x) >= 1 or one such pair per image, got {res}")
    max_y, max_x = int(res[:, 0].max()), int(res[:, 1].max())
    # Gradients on a lattice big enough for the finest image; coarser ones use its corner.
    angles = 2 * math.pi * torch.rand(batch, max_y + 1, max_x + 1, generator=generator)
    grads = torch.stack((torch.cos(angles), torch.sin(angles)), dim=-1)  # (B, Y+1, X+1, 2)

    # Lattice coordinates of every pixel centre, per image: (B, H, 1) and (B, 1, W).
    ys = (torch.arange(height) + 0.5) / height * res[:, :1].float()
    xs = (torch.arange(width) + 0.5) / width * res[:, 1:].float()
    y0, x0 = ys.floor().long(), xs.floor().long()
    fy, fx = (ys - y0)[:, :, None], (xs - x0)[:, None, :]  # (B, H, 1), (B, 1, W)
    y0, x0 = y0[:, :, None], x0[:, None, :]
    b = torch.arange(batch)[:, None, None]

    def corner(dy: int, dx: int) -> torch.Tensor:
        g = grads[b, y0 + dy, x0 + dx]  # (B, H, W, 2)
        return g[..., 0] * (fx - dx) + g[..., 1] * (fy - dy)

    wy, wx = _fade(fy), _fade(fx)
    top = torch.lerp(corner(0, 0), corner(0, 1), wx)
    bottom = torch.lerp(corner(1, 0), corner(1, 1), wx)
    # The dot products are bounded by sqrt(2)/2; scale to about [-1, 1].
    return math.sqrt(2) * torch.lerp(top, bottom, wy)


def perlin_mask(
    batch: int,
    size: Sequence[int],
    fraction: float | None = None,
    threshold: float = 0.5,
    min_scale: int = 0,
    max_scale: int = 6,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Binary Perlin-noise masks: 1 where the synthetic anomaly goes.

    Each image draws its own lattice resolution ``(2**ky, 2**kx)`` with ``ky, kx`` uniform
    in ``[min_scale, max_scale)``, as DRAEM does (its default: ``[0, 6)``, threshold 0.5 on
    the raw noise, which covers a random share of each image). With ``fraction`` the
    threshold is instead the per-image ``1 - fraction`` quantile, so each mask covers that
    share of the image (up to ties).

    Args:
        batch: Number of masks B.
        size: (H, W) of each mask.
        fraction: Share of each image to cover, in (0, 1]. Defaults to None (use
            ``threshold``).
        threshold: Noise level above which a pixel is in the mask when ``fraction`` is
            None. Defaults to 0.5 (DRAEM).
        min_scale: Smallest log2 lattice resolution. Defaults to 0.
        max_scale: Exclusive upper bound of the log2 resolution. Defaults to 6 (DRAEM).
        generator: torch generator for reproducible masks. Defaults to None.

    Returns:
        (B, H, W) float32 masks with values 0 and 1.
    """
    if not 0 <= min_scale < max_scale:
        raise ValueError(f"need 0 <= min_scale < max_scale, got {min_scale}, {max_scale}")
    if fraction is not None and not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    exps = torch.randint(min_scale, max_scale, (batch, 2), generator=generator)
    noise = perlin_noise(batch, size, 2**exps, generator=generator)
    if fraction is None:
        return (noise > threshold).float()
    cut = torch.quantile(noise.flatten(1), 1.0 - fraction, dim=1)
    return (noise >= cut[:, None, None]).float()
