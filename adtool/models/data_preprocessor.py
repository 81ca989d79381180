"""Batching and normalisation of anomaly images."""

from __future__ import annotations

from mmengine.model import ImgDataPreprocessor

from adtool.registry import MODELS


@MODELS.register_module()
class AnomalyDataPreprocessor(ImgDataPreprocessor):
    """Stack uint8 (3, H, W) images into a float batch normalised by ``mean``/``std``.

    ``mean`` and ``std`` are on the 0-255 scale (e.g. ImageNet's ``[123.675, 116.28,
    103.53]`` / ``[58.395, 57.12, 57.375]``); data samples pass through unchanged.
    """
