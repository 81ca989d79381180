"""Synthetic-anomaly generators used by training pipelines (DRAEM, DSR, SuperSimpleNet).

The math lives in :mod:`adtool.models.components.perlin`; these transforms draw from it per
sample inside a pipeline. Randomness comes from numpy's global generator (which mmengine
seeds per worker), as in the geometric transforms, turned into a torch generator's seed.
"""

from __future__ import annotations

import numpy as np
import torch

from adtool.errors import ConfigError
from adtool.registry import TRANSFORMS


@TRANSFORMS.register_module()
class PerlinAnomalyMask:
    """Add a binary Perlin-noise mask ``results[key]`` (H x W float32, 0/1) of the image size.

    With probability ``1 - prob`` the mask is all zero (DRAEM leaves half its training
    images normal). The mask only says where a synthetic anomaly goes; the method's
    augmenter fills it (texture blend, codebook anomaly, feature noise).

    Args:
        prob: Probability that the mask is non-empty. Defaults to 1.0.
        fraction: Share of the image each mask covers; None thresholds the noise at
            ``threshold`` instead (DRAEM). Defaults to None.
        threshold: Noise threshold when ``fraction`` is None. Defaults to 0.5 (DRAEM).
        min_scale: Smallest log2 lattice resolution. Defaults to 0 (DRAEM).
        max_scale: Exclusive upper bound of the log2 resolution. Defaults to 6 (DRAEM).
        key: Results key that receives the mask. Defaults to ``'anomaly_mask'``.
    """

    def __init__(
        self,
        prob: float = 1.0,
        fraction: float | None = None,
        threshold: float = 0.5,
        min_scale: int = 0,
        max_scale: int = 6,
        key: str = "anomaly_mask",
    ) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ConfigError(f"PerlinAnomalyMask prob must be in [0, 1], got {prob}")
        if fraction is not None and not 0.0 < fraction <= 1.0:
            raise ConfigError(f"PerlinAnomalyMask fraction must be in (0, 1], got {fraction}")
        if not 0 <= min_scale < max_scale:
            raise ConfigError(
                f"PerlinAnomalyMask needs 0 <= min_scale < max_scale, got {min_scale}, {max_scale}"
            )
        self.prob = float(prob)
        self.fraction = fraction
        self.threshold = float(threshold)
        self.min_scale = int(min_scale)
        self.max_scale = int(max_scale)
        self.key = key

    def __call__(self, results: dict) -> dict:
        # Imported here: the models package imports the engine, which must not be needed
        # to build a data pipeline.
        from adtool.models.components.perlin import perlin_mask

        height, width = results["img"].shape[:2]
        if np.random.rand() >= self.prob:
            results[self.key] = np.zeros((height, width), np.float32)
            return results
        generator = torch.Generator().manual_seed(int(np.random.randint(0, 2**31 - 1)))
        mask = perlin_mask(
            1,
            (height, width),
            fraction=self.fraction,
            threshold=self.threshold,
            min_scale=self.min_scale,
            max_scale=self.max_scale,
            generator=generator,
        )
        results[self.key] = mask[0].numpy()
        return results

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(prob={self.prob}, fraction={self.fraction}, "
            f"threshold={self.threshold}, scales=[{self.min_scale}, {self.max_scale}), "
            f"key={self.key!r})"
        )
