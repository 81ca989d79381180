"""U-Flow's a-contrario detection: the per-pixel log-NFA map of a flow's latents.

Under the null hypothesis "the image is normal" a trained flow's latents are i.i.d.
N(0, 1), so each ``z^2`` is chi-square with one degree of freedom and exceeds
``tau = chi2_1^-1(q)`` with probability ``p = 1 - q`` (q = 0.5: ``tau = 0.455``). Around
each position of each scale U-Flow counts these "candidates" in a window (all channels,
averaged over the channels: ``k``) and takes the binomial tail ``P(K >= k)``,
``K ~ B(n, p)`` with ``n`` the window's positions. Scales are independent under the null
(the U-shaped flow makes them so), so their log-probabilities, upsampled to the image,
add; times the number of tests (the positions of every scale) this is the expected number
of false alarms, ``NFA``. A pixel is detected where ``log10 NFA < log10 epsilon``; with
``epsilon = 1`` (the paper's automatic threshold) where ``log10 NFA < 0``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["binomial_log10_tail", "candidate_threshold", "log10_nfa_map", "window_candidates"]


def candidate_threshold(probability_thr: float = 0.5) -> float:
    """``tau`` with ``P(z^2 >= tau) = 1 - probability_thr`` for ``z ~ N(0, 1)``.

    ``z^2 >= tau`` iff ``|z| >= Phi^-1((1 + q) / 2)``, so ``tau`` is that quantile squared
    (the chi-square(1) quantile of ``q``).
    """
    if not 0.0 < probability_thr < 1.0:
        raise ValueError(f"probability_thr must be in (0, 1), got {probability_thr}")
    quantile = torch.special.ndtri(torch.tensor((1.0 + probability_thr) / 2, dtype=torch.float64))
    return float(quantile**2)


def binomial_log10_tail(k: torch.Tensor, n: int, p: float) -> torch.Tensor:
    """``log10 P(K >= k)`` for ``K ~ Binomial(n, p)``, elementwise; ``k`` real in [0, n].

    "At least k" for a real ``k`` is ``K >= ceil(k)``. The tail is an exact
    log-sum-exp over the pmf (``n`` is a window's size, at most a few hundred), so no
    tail underflows to ``-inf`` (``P(K >= n) = p^n``).
    """
    j = torch.arange(n + 1, dtype=torch.float64)
    log_pmf = (
        math.lgamma(n + 1)
        - torch.lgamma(j + 1)
        - torch.lgamma(n - j + 1)
        + j * math.log(p)
        + (n - j) * math.log1p(-p)
    )
    log_tail = torch.logcumsumexp(log_pmf.flip(0), 0).flip(0)  # [j] = log P(K >= j)
    index = torch.ceil(k.to(torch.float64) - 1e-9).clamp(0, n).long()
    return (log_tail[index] / math.log(10)).to(k.device)


def window_candidates(z: torch.Tensor, tau: float, half_window: int) -> torch.Tensor:
    """(B, C, h, w) latents -> (B, 1, h, w) candidates ``z^2 >= tau`` per window, per channel.

    The count over the ``(2 * half_window + 1)^2`` window (reflect padding, as the official
    code) and over every channel, divided by the channels: the mean count of a channel.
    """
    hits = (z.detach() ** 2 >= tau).sum(1, keepdim=True, dtype=torch.float32)
    mode = "reflect" if min(z.shape[-2:]) > half_window else "replicate"
    padded = F.pad(hits, (half_window,) * 4, mode=mode)
    side = 2 * half_window + 1
    counts = F.avg_pool2d(padded, side, stride=1, divisor_override=1)
    return counts / z.shape[1]


def log10_nfa_map(
    latents: Sequence[torch.Tensor],
    size: Sequence[int],
    window_size: int = 7,
    probability_thr: float = 0.5,
) -> torch.Tensor:
    """Latents per scale (finest first) -> (B, H, W) ``log10 NFA`` at the input size.

    Scale ``l`` (0 = finest) uses a window of ``window_size / 2^l`` (at least 3x3); its
    ``log10 P(K >= k)`` is upsampled bicubically (``align_corners=True``, the official
    code's); the scales' values add, plus ``log10`` of the number of tests (positions over
    every scale).

    Args:
        latents: (B, C_l, h_l, w_l) per scale, finest first.
        size: (H, W) of the map.
        window_size: Window side at the finest scale. Defaults to 7 (paper).
        probability_thr: ``q``; a latent value is a candidate when ``z^2`` exceeds the
            chi-square(1) ``q``-quantile, which has probability ``1 - q``. Defaults to 0.5
            (paper).
    """
    tau = candidate_threshold(probability_thr)
    p = 1.0 - probability_thr
    total = torch.zeros(())
    for scale, z in enumerate(latents):
        half = max(int(window_size / 2**scale) // 2, 1)
        k = window_candidates(z, tau, half)
        log_p = binomial_log10_tail(k, (2 * half + 1) ** 2, p).float()
        total = total + F.interpolate(log_p, size=tuple(size), mode="bicubic", align_corners=True)
    n_tests = sum(int(z.shape[-2] * z.shape[-1]) for z in latents)
    return (math.log10(n_tests) + total).squeeze(1)
