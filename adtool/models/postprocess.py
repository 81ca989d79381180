"""Score normalisation and thresholds that travel with a model (its state_dict).

Every anomaly model owns a :class:`PostProcessor` (``model.postprocessor``, built by
:class:`~adtool.models.anomaly.BaseAnomalyModel`). Its buffers hold the four thresholds
chosen on the test split and min/max statistics of image scores and map values; they
are saved in the checkpoint under ``postprocessor.*``, so a checkpoint alone gives
calibrated scores and labels. Normalisation follows anomalib's min-max rule around the
threshold: ``(x - threshold) / (max - min) + 0.5`` clamped to [0, 1], so a score at the
threshold maps to 0.5 and the label rule ``score >= threshold`` becomes ``normalised >=
0.5``.
"""

from __future__ import annotations

import torch
from torch import nn

from adtool.registry import MODELS

#: The thresholds computed after a test, in the order the buffer stores them.
THRESHOLD_NAMES = ("f1_percentile", "f1_uniform", "youden_j", "percentile_95")


@MODELS.register_module()
class PostProcessor(nn.Module):
    """Thresholds and normalisation statistics of one model, as buffers.

    Each value has a bool "known" flag beside it (no NaN in the state dict, so that
    weights compare equal); no chosen threshold is index -1. A checkpoint written
    before the post-processor existed has no ``postprocessor.*`` keys; it still loads
    strictly and leaves everything unset.
    """

    def __init__(self) -> None:
        super().__init__()
        n = len(THRESHOLD_NAMES)
        self.register_buffer("threshold_values", torch.zeros(n))
        self.register_buffer("threshold_known", torch.zeros(n, dtype=torch.bool))
        self.register_buffer("chosen_index", torch.tensor(-1, dtype=torch.long))
        # pixel threshold value and whether it is known
        self.register_buffer("pixel_threshold", torch.tensor(0.0))
        self.register_buffer("pixel_known", torch.tensor(False))
        # image_min, image_max, map_min, map_max; known: (image, map)
        self.register_buffer("score_stats", torch.zeros(4))
        self.register_buffer("stats_known", torch.zeros(2, dtype=torch.bool))

    # ------------------------------------------------------------------ thresholds

    def set_thresholds(
        self, values: dict[str, float | None], chosen: str | None, pixel: float | None = None
    ) -> None:
        """Store the thresholds of a test run.

        Args:
            values: Threshold name (see :data:`THRESHOLD_NAMES`) -> value or None
                (undefined, e.g. a one-class split). Names left out stay unset.
            chosen: Name of the threshold that labels images (the confusion matrix's),
                or None.
            pixel: Map value that outlines anomalous pixels, or None. Defaults to None.

        Raises:
            ValueError: for a name that is not one of :data:`THRESHOLD_NAMES`.
        """
        unknown = [n for n in values if n not in THRESHOLD_NAMES]
        if unknown or (chosen is not None and chosen not in THRESHOLD_NAMES):
            bad = unknown[0] if unknown else chosen
            raise ValueError(f"unknown threshold '{bad}'; use one of {', '.join(THRESHOLD_NAMES)}")
        for i, name in enumerate(THRESHOLD_NAMES):
            value = values.get(name)
            self.threshold_values[i] = 0.0 if value is None else float(value)
            self.threshold_known[i] = value is not None
        self.chosen_index.fill_(-1 if chosen is None else THRESHOLD_NAMES.index(chosen))
        self.pixel_threshold.fill_(0.0 if pixel is None else float(pixel))
        self.pixel_known.fill_(pixel is not None)

    def thresholds(self) -> dict | None:
        """The stored thresholds, or None when never set.

        Returns:
            ``{"chosen", "value", "values": {name: value}, "pixel_threshold"}`` (the keys
            of the threshold record a test run writes), or None.
        """
        values = {
            name: float(value) if known else None
            for name, value, known in zip(
                THRESHOLD_NAMES, self.threshold_values, self.threshold_known
            )
        }
        index = int(self.chosen_index)
        chosen = THRESHOLD_NAMES[index] if index >= 0 else None
        pixel = float(self.pixel_threshold) if bool(self.pixel_known) else None
        if chosen is None and pixel is None and all(v is None for v in values.values()):
            return None
        return {
            "chosen": chosen,
            "value": None if chosen is None else values[chosen],
            "values": values,
            "pixel_threshold": pixel,
        }

    @property
    def image_threshold(self) -> float | None:
        """Value of the chosen threshold, or None."""
        index = int(self.chosen_index)
        if index < 0 or not bool(self.threshold_known[index]):
            return None
        return float(self.threshold_values[index])

    def labels(self, scores: torch.Tensor) -> torch.Tensor:
        """``scores >= chosen threshold`` as a bool tensor (raw, unnormalised scores).

        Raises:
            RuntimeError: when no chosen threshold is stored.
        """
        threshold = self.image_threshold
        if threshold is None:
            raise RuntimeError(
                "the model holds no chosen threshold; test it first (the test stores its "
                "thresholds) or give a threshold value"
            )
        return torch.as_tensor(scores) >= threshold

    # ------------------------------------------------------------------ normalisation

    def set_normalization(
        self, image_min: float, image_max: float, map_min: float | None, map_max: float | None
    ) -> None:
        """Store min/max of image scores and of map values (None: the model has no maps)."""
        has_map = map_min is not None and map_max is not None
        stats = [image_min, image_max, map_min if has_map else 0.0, map_max if has_map else 0.0]
        self.score_stats.copy_(torch.tensor([float(v) for v in stats]))
        self.stats_known.copy_(torch.tensor([True, has_map]))

    @property
    def has_normalization(self) -> bool:
        """True when image-score statistics are stored."""
        return bool(self.stats_known[0])

    @staticmethod
    def _min_max(
        x: torch.Tensor, low: torch.Tensor, high: torch.Tensor, threshold: float | None
    ) -> torch.Tensor:
        if threshold is None:
            # Without a threshold the midpoint stands in: plain min-max scaling.
            threshold = float(low + high) / 2
        span = float(high - low)
        # A constant score on the statistics set: everything at the threshold is 0.5.
        span = span if span > 0 else 1.0
        return ((x - threshold) / span + 0.5).clamp(0.0, 1.0)

    def normalize_scores(self, scores: torch.Tensor) -> torch.Tensor:
        """Image scores -> [0, 1]; the chosen threshold maps to 0.5.

        Raises:
            RuntimeError: when no normalisation statistics are stored.
        """
        if not self.has_normalization:
            raise RuntimeError(
                "the model holds no score normalisation statistics; call "
                "postprocessor.set_normalization(...) after a test run"
            )
        low, high = self.score_stats[0], self.score_stats[1]
        return self._min_max(torch.as_tensor(scores), low, high, self.image_threshold)

    def normalize_maps(self, maps: torch.Tensor) -> torch.Tensor:
        """Anomaly maps -> [0, 1]; the pixel threshold maps to 0.5.

        Raises:
            RuntimeError: when no map statistics are stored.
        """
        low, high = self.score_stats[2], self.score_stats[3]
        if not bool(self.stats_known[1]):
            raise RuntimeError(
                "the model holds no map normalisation statistics; call "
                "postprocessor.set_normalization(...) with map_min/map_max after a test run"
            )
        pixel = float(self.pixel_threshold) if bool(self.pixel_known) else None
        return self._min_max(torch.as_tensor(maps), low, high, pixel)

    # ------------------------------------------------------------------ checkpoints

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # Checkpoints from before the post-processor have none of its keys: keep the
        # unset defaults so that they still load with strict=True.
        for name, buffer in self._buffers.items():
            state_dict.setdefault(prefix + name, buffer.detach().clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
