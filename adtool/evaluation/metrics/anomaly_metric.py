"""Image- and pixel-level anomaly detection metric for mmengine's evaluator."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from functools import reduce
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.dist import collect_results, get_world_size, is_main_process
from mmengine.evaluator import BaseMetric
from mmengine.structures import BaseDataElement

from adtool.engine.dist import gather_to_main, main_value
from adtool.errors import ConfigError
from adtool.evaluation.functional import aupro, f1_max, image_aupr, image_auroc, pixel_auroc
from adtool.evaluation.report import build_report, write_report
from adtool.registry import METRICS

# report block -> logger key prefix
_FLAT_KEYS = {
    "image": ("AUROC", "AUPR", "F1_max"),
    "pixel": ("AUROC", "AUPRO"),
}
#: Every flat key ``compute_metrics`` can return (what a checkpoint or early-stop rule
#: may monitor); ``keys=`` picks from these.
METRIC_KEYS = tuple(f"{block}_{key}" for block, keys in _FLAT_KEYS.items() for key in keys)


def _scalar(value: Any, name: str) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"{name} must hold one value per image, got shape {tuple(value.shape)}"
            )
        return value.item()
    return float(np.asarray(value).reshape(-1)[0])


def _plane(value: Any, dtype: torch.dtype) -> torch.Tensor:
    """A (H, W) CPU tensor from an (H, W) or (1, H, W) map or mask."""
    t = torch.as_tensor(value).detach().cpu()
    while t.ndim > 2 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 2:
        raise ValueError(f"expected an (H, W) anomaly map or mask, got shape {tuple(t.shape)}")
    return t.to(dtype)


def _compact_map(value: Any) -> torch.Tensor:
    """The map as float16, unless a value would overflow float16 (then float32)."""
    amap = _plane(value, torch.float32)
    if amap.numel() and float(amap.abs().max()) > torch.finfo(torch.float16).max:
        return amap
    return amap.to(torch.float16)


def _stack(planes: list[torch.Tensor], size: tuple[int, int], mode: str) -> torch.Tensor:
    """Stack planes, resizing those not at ``size`` (bilinear for maps, nearest for masks)."""
    out = []
    for p in planes:
        if tuple(p.shape) != size:
            resized = F.interpolate(
                p[None, None].float(),
                size=size,
                mode=mode,
                **({"align_corners": False} if mode == "bilinear" else {}),
            )
            p = resized[0, 0].to(p.dtype)
        out.append(p)
    dtype = reduce(torch.promote_types, {p.dtype for p in out})
    return torch.stack([p.to(dtype) for p in out])


def _batch_images(data_batch: Any, n: int) -> list[np.ndarray | None]:
    """The batch's uint8 (H, W, 3) input images, or Nones when the batch has none."""
    inputs = data_batch.get("inputs") if isinstance(data_batch, dict) else None
    if inputs is None or len(inputs) != n:
        return [None] * n
    out = []
    for img in inputs:
        ok = isinstance(img, torch.Tensor) and img.dtype == torch.uint8 and img.ndim == 3
        out.append(img.permute(1, 2, 0).contiguous().numpy() if ok and img.shape[0] == 3 else None)
    return out


@METRICS.register_module()
class AnomalyMetric(BaseMetric):
    """Image AUROC / AUPR / F1-max, pixel AUROC / AUPRO, thresholds and confusion matrix.

    ``compute_metrics`` returns the flat scalars for the logger (``image_AUROC``,
    ``image_AUPR``, ``image_F1_max``, ``pixel_AUROC``, ``pixel_AUPRO``; a key is left out
    when its value is undefined, e.g. a one-class split) and keeps the full report on
    ``self.last_report`` (see :func:`adtool.evaluation.report.build_report`) and the test
    arrays on ``self.last_arrays`` for :func:`adtool.evaluation.report.write_report`.

    Maps are kept as float16 and masks as uint8 on the CPU to bound memory (a 20M-pixel
    test set holds 40 MB of maps); a map with values beyond float16's range (|x| > 65504)
    stays float32, and then the stacked maps are float32. If samples differ in size, which
    is rare since the pipeline resizes every image, maps (bilinear) and masks (nearest) are
    resized to the most common size before the pixel metrics.

    Args:
        collect_device: mmengine's; unused by distributed runs, which gather by message
            passing (see :meth:`evaluate`). Defaults to 'cpu'.
        prefix: prefix of the logged keys. Defaults to None (no prefix).
        collect_dir: folder for gathering results on CPU, see mmengine's ``BaseMetric``.
            Defaults to None.
        pixel_metrics: compute pixel AUROC / AUPRO when maps and masks exist. Defaults to
            True.
        fpr_limit: FPR bound of AUPRO. Defaults to 0.3.
        keys: Compute only these flat keys (of :data:`METRIC_KEYS`), with the same
            functions and values as the full report, and skip everything else: no
            thresholds, per-defect table or report (``last_report`` / ``last_arrays`` stay
            None), and without a ``pixel_*`` key no map, mask or image is kept. The cheap
            per-epoch validation (:class:`~adtool.engine.AnomalyValLoop` sets it to what
            the checkpoint and early-stop rules monitor). Defaults to None (the full
            report).
    """

    default_prefix = ""
    METRIC_KEYS = METRIC_KEYS

    def __init__(
        self,
        collect_device: str = "cpu",
        prefix: str | None = None,
        collect_dir: str | None = None,
        pixel_metrics: bool = True,
        fpr_limit: float = 0.3,
        keys: Sequence[str] | None = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        if not 0.0 < fpr_limit <= 1.0:
            raise ValueError(f"AnomalyMetric fpr_limit must be in (0, 1], got {fpr_limit}")
        self.pixel_metrics = pixel_metrics
        self.fpr_limit = fpr_limit
        self.keys: tuple[str, ...] | None = None
        self.set_keys(keys)
        self.last_report: dict | None = None
        self.last_arrays: dict | None = None

    def set_keys(self, keys: Sequence[str] | None) -> None:
        """Compute only ``keys`` from now on (None: the full report); see the class doc."""
        if keys is None:
            self.keys = None
            return
        keys = (keys,) if isinstance(keys, str) else tuple(keys)
        unknown = [k for k in keys if k not in METRIC_KEYS]
        if unknown or not keys:
            raise ConfigError(
                f"AnomalyMetric keys {list(unknown) or '[]'} are not metrics it computes; "
                f"choose from {list(METRIC_KEYS)}"
            )
        self.keys = tuple(dict.fromkeys(keys))

    @property
    def needs_maps(self) -> bool:
        """Whether the metric uses anomaly maps (the full report, or a ``pixel_*`` key)."""
        if self.keys is None:
            return True
        return self.pixel_metrics and any(k.startswith("pixel_") for k in self.keys)

    def write_outputs(self, work_dir: str | os.PathLike, results: dict) -> None:
        """results.txt, scores.csv, the plots and the overlays of the last test in
        ``work_dir`` (the run path writes ``results.json`` itself, last)."""
        write_report(work_dir, results, self.last_arrays, results_json=False)

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep each sample's score, label, map, mask and metadata.

        Args:
            data_batch: the batch from the dataloader (unused).
            data_samples: dicts from ``AnomalyDataSample.to_dict()`` holding ``pred_score``,
                ``gt_label``, optionally ``anomaly_map`` and ``gt_mask``, and the metainfo.
                A model that scores images only sets no ``anomaly_map``: the report then
                has ``pixel: None`` and no overlays, everything else as usual.
        """
        keep_maps = self.needs_maps
        images = _batch_images(data_batch, len(data_samples)) if self.keys is None else None
        images = images or [None] * len(data_samples)
        for sample, image in zip(data_samples, images):
            if isinstance(sample, BaseDataElement):  # called directly, not via the Evaluator
                sample = sample.to_dict()
            if "pred_score" not in sample or "gt_label" not in sample:
                missing = [k for k in ("pred_score", "gt_label") if k not in sample]
                raise KeyError(
                    f"AnomalyMetric needs {missing} in every data sample of "
                    f"{sample.get('img_path', '<no img_path>')}; the model's predict mode must "
                    "set pred_score and the test dataset must have labels"
                )
            amap = sample.get("anomaly_map") if keep_maps else None
            mask = sample.get("gt_mask") if keep_maps else None
            label = int(_scalar(sample["gt_label"], "gt_label"))
            self.results.append(
                {
                    "score": _scalar(sample["pred_score"], "pred_score"),
                    "label": label,
                    "map": None if amap is None else _compact_map(amap),
                    "mask": None
                    if mask is None
                    else (_plane(mask, torch.float32) > 0).to(torch.uint8),
                    "img_path": sample.get("img_path"),
                    "defect_type": sample.get("defect_type", "good" if label == 0 else "unknown"),
                    "category": sample.get("category"),
                    "img_shape": sample.get("img_shape"),
                    "image": image,
                }
            )
            if "nfa_score" in sample and self.keys is None:  # a-contrario threshold (U-Flow)
                nfa_mask = sample.get("nfa_mask")
                self.results[-1]["nfa_score"] = _scalar(sample["nfa_score"], "nfa_score")
                self.results[-1]["nfa_mask"] = (
                    None
                    if nfa_mask is None
                    else (_plane(nfa_mask, torch.float32) > 0).to(torch.uint8)
                )

    def evaluate(self, size: int) -> dict:
        """mmengine's ``evaluate``; distributed, the main process gathers by message passing.

        Every rank's samples reach the main process once each, in the dataset's order (the
        sampler's padding dropped by ``size``); the main process computes the metrics and
        keeps ``last_arrays`` (only it writes files); every rank gets the metrics and
        ``last_report``. With ``collect_dir`` set, mmengine's gathering through that shared
        folder is used instead.
        """
        if get_world_size() == 1:
            return super().evaluate(size)
        if self.collect_dir is not None:
            results = collect_results(self.results, size, "cpu", tmpdir=self.collect_dir)
        else:
            results = gather_to_main(self.results, size)
        self.results.clear()
        metrics = None
        if is_main_process():
            metrics = self.compute_metrics(results)
            if self.prefix:
                metrics = {f"{self.prefix}/{k}": v for k, v in metrics.items()}
        metrics, self.last_report = main_value((metrics, self.last_report))
        return metrics

    def compute_metrics(self, results: list) -> dict[str, float]:
        """Build the report from every collected sample.

        Returns:
            Flat metrics for the logger; undefined (None) values are left out.
        """
        if self.keys is not None:
            return self._selected_metrics(results)
        scores = np.asarray([r["score"] for r in results], dtype=np.float32)
        labels = np.asarray([r["label"] for r in results], dtype=np.int64)
        defect_types = [str(r["defect_type"]) for r in results]
        maps, masks = self._maps_and_masks(results)
        nfa_scores, nfa_masks = self._nfa(results, masks)
        report = build_report(
            scores,
            labels,
            defect_types,
            maps=maps,
            masks=masks,
            pixel_metrics=self.pixel_metrics,
            fpr_limit=self.fpr_limit,
            nfa_scores=nfa_scores,
            nfa_masks=nfa_masks,
        )
        self.last_report = report
        self.last_arrays = {
            "scores": scores,
            "labels": labels,
            "img_paths": [r["img_path"] for r in results],
            "defect_types": defect_types,
            "nfa_scores": nfa_scores,
            "maps": None if maps is None else maps.numpy(),
            "masks": None if masks is None else masks.numpy(),
            # The images as the model saw them (after resize and crop), for the overlays.
            "images": [r.get("image") for r in results],
        }
        flat = {}
        for block, keys in _FLAT_KEYS.items():
            values = report.get(block) or {}
            for key in keys:
                if values.get(key) is not None:
                    flat[f"{block}_{key}"] = values[key]
        return flat

    def _selected_metrics(self, results: list) -> dict[str, float]:
        """Only ``self.keys``, by the functions ``build_report`` uses (same values)."""
        self.last_report = None
        self.last_arrays = None
        scores = np.asarray([r["score"] for r in results], dtype=np.float32)
        labels = np.asarray([r["label"] for r in results], dtype=np.int64)
        s = scores.astype(np.float64)
        y = (labels > 0).astype(np.int64)
        image_fns = {"AUROC": image_auroc, "AUPR": image_aupr, "F1_max": f1_max}
        values: dict[str, float | None] = {}
        for key in self.keys:
            block, name = key.split("_", 1)
            if block == "image":
                values[key] = image_fns[name](s, y)
        pixel_keys = [k for k in self.keys if k.startswith("pixel_")]
        if pixel_keys and self.pixel_metrics:
            maps, masks = self._maps_and_masks(results)
            if maps is not None and masks is not None:
                if "pixel_AUROC" in pixel_keys:
                    values["pixel_AUROC"] = pixel_auroc(maps, masks)
                if "pixel_AUPRO" in pixel_keys:
                    values["pixel_AUPRO"] = aupro(maps, masks, fpr_limit=self.fpr_limit)
        return {k: v for k, v in values.items() if v is not None}

    @staticmethod
    def _nfa(results: list, masks: torch.Tensor | None) -> tuple[np.ndarray | None, Any]:
        """Per-image ``nfa_score`` and stacked ``nfa_mask`` when every sample has them."""
        if not results or any("nfa_score" not in r for r in results):
            return None, None
        scores = np.asarray([r["nfa_score"] for r in results], dtype=np.float64)
        if masks is None or any(r["nfa_mask"] is None for r in results):
            return scores, None
        size = tuple(masks.shape[-2:])
        return scores, _stack([r["nfa_mask"] for r in results], size, "nearest")

    @staticmethod
    def _maps_and_masks(results: list) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Stacked (N, H, W) maps and masks at the most common size, or None.

        Maps are None unless every sample has one. Masks are None unless every anomalous
        sample has one; a normal sample without a mask gets an all-zero mask.
        """
        if not results or any(r["map"] is None for r in results):
            return None, None
        size = Counter(tuple(r["map"].shape) for r in results).most_common(1)[0][0]
        maps = _stack([r["map"] for r in results], size, "bilinear")
        if any(r["mask"] is None and r["label"] == 1 for r in results):
            return maps, None
        if all(r["mask"] is None for r in results):
            return maps, None
        planes = [
            r["mask"] if r["mask"] is not None else torch.zeros(size, dtype=torch.uint8)
            for r in results
        ]
        return maps, _stack(planes, size, "nearest")
