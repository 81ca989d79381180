"""Batching and normalisation of anomaly images."""

from __future__ import annotations

from collections.abc import Sequence

from mmengine.model import ImgDataPreprocessor

from adtool.models.components.tiler import Tiler
from adtool.registry import MODELS


@MODELS.register_module()
class AnomalyDataPreprocessor(ImgDataPreprocessor):
    """Stack uint8 (3, H, W) images into a float batch normalised by ``mean``/``std``.

    ``mean`` and ``std`` are on the 0-255 scale (e.g. ImageNet's ``[123.675, 116.28,
    103.53]`` / ``[58.395, 57.12, 57.375]``); data samples pass through unchanged.

    Args:
        tiling: ``dict(tile_size=..., stride=...)`` to run the model on overlapping tiles
            of each (high-resolution) image and stitch the maps back (:class:`Tiler`;
            the model does the cutting and stitching, see ``BaseAnomalyModel``). None
            (the default) feeds whole images.
        The other arguments are mmengine's ``ImgDataPreprocessor``'s (listed here so that
        a misspelt key is refused by name).
    """

    def __init__(
        self,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        pad_size_divisor: int = 1,
        pad_value: float = 0,
        bgr_to_rgb: bool = False,
        rgb_to_bgr: bool = False,
        non_blocking: bool | None = False,
        tiling: dict | None = None,
    ) -> None:
        super().__init__(
            mean=mean,
            std=std,
            pad_size_divisor=pad_size_divisor,
            pad_value=pad_value,
            bgr_to_rgb=bgr_to_rgb,
            rgb_to_bgr=rgb_to_bgr,
            non_blocking=non_blocking,
        )
        self.tiler = Tiler(**tiling) if tiling else None
