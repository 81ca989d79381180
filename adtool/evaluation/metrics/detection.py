"""COCO mAP of a detector and its score-threshold analysis at IoU 0.5.

mAP, mAP50 and mAP75 come from torchmetrics' ``MeanAveragePrecision`` with the
faster-coco-eval backend (COCO's 101-point interpolated AP, up to 100 detections per
image). For deployment a detector also needs one score threshold: detections are matched
greedily to the ground truth (per image and class, highest score first, IoU >= 0.5, each
box matched once), which gives precision, recall and F1 for every threshold of a sweep;
the best-F1 threshold is stored for inference.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from torchvision.ops import box_iou
from torchvision.utils import draw_bounding_boxes

from adtool.errors import ConfigError, DataError
from adtool.evaluation.task_report import (
    fmt,
    format_table,
    results_header,
    save_png,
    write_results_txt,
)
from adtool.registry import METRICS
from adtool.visualization.canvas import new_figure, save_figure

#: Score thresholds of the sweep: 0.00, 0.01, ..., 1.00.
SWEEP = np.round(np.linspace(0.0, 1.0, 101), 2)


def match_detections(
    pred_boxes: torch.Tensor,
    pred_scores: torch.Tensor,
    pred_labels: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    iou_threshold: float = 0.5,
) -> torch.Tensor:
    """Which detections of one image are true positives under greedy matching.

    Detections are visited from the highest score down; each takes the unmatched
    ground-truth box of its class with the highest IoU if that IoU is >= ``iou_threshold``.
    Because the order is by score, the matches of the detections above any threshold do
    not depend on those below it, so one matching serves the whole threshold sweep.

    Args:
        pred_boxes: (P, 4) xyxy.
        pred_scores: (P,).
        pred_labels: (P,).
        gt_boxes: (G, 4) xyxy.
        gt_labels: (G,).
        iou_threshold: Minimum IoU of a match. Defaults to 0.5.

    Returns:
        (P,) bool, True where the detection matched a ground-truth box.
    """
    tp = torch.zeros(len(pred_scores), dtype=torch.bool)
    if len(pred_scores) == 0 or len(gt_labels) == 0:
        return tp
    iou = box_iou(pred_boxes.float(), gt_boxes.float())
    iou[pred_labels[:, None] != gt_labels[None, :]] = -1.0
    taken = torch.zeros(len(gt_labels), dtype=torch.bool)
    for k in torch.argsort(pred_scores, descending=True, stable=True).tolist():
        candidates = iou[k].masked_fill(taken, -1.0)
        best = int(candidates.argmax())
        if candidates[best] >= iou_threshold:
            tp[k] = True
            taken[best] = True
    return tp


def threshold_sweep(
    scores: np.ndarray, tp: np.ndarray, n_gt: int, thresholds: np.ndarray = SWEEP
) -> dict[str, np.ndarray]:
    """Precision, recall and F1 of the detections scoring >= t, for each threshold t.

    Args:
        scores: (P,) scores of all detections of the split.
        tp: (P,) whether each detection matched (:func:`match_detections`).
        n_gt: Number of ground-truth boxes.
        thresholds: (T,) thresholds. Defaults to 0.00, 0.01, ..., 1.00.

    Returns:
        ``threshold``, ``precision`` (NaN where nothing is kept), ``recall``, ``f1``,
        ``tp``, ``fp`` and ``fn`` arrays of length T.
    """
    order = np.argsort(-scores, kind="stable")
    sorted_scores = -scores[order]
    cum_tp = np.concatenate([[0], np.cumsum(tp[order])])
    # Detections with score >= t are the first n of the descending order.
    kept = np.searchsorted(sorted_scores, -thresholds, side="right")
    n_tp = cum_tp[kept]
    n_fp = kept - n_tp
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(kept > 0, n_tp / np.maximum(kept, 1), np.nan)
        recall = n_tp / n_gt if n_gt else np.zeros(len(thresholds))
        denom = kept + n_gt
        f1 = np.where(denom > 0, 2 * n_tp / np.maximum(denom, 1), 0.0)
    return {
        "threshold": np.asarray(thresholds, np.float64),
        "precision": precision,
        "recall": np.asarray(recall, np.float64),
        "f1": f1,
        "tp": n_tp,
        "fp": n_fp,
        "fn": n_gt - n_tp,
    }


def best_f1(sweep: dict[str, np.ndarray]) -> dict:
    """The sweep's best-F1 threshold; among ties, the middle one (the widest margin)."""
    f1 = sweep["f1"]
    ties = np.flatnonzero(np.isclose(f1, f1.max()))
    i = int(ties[len(ties) // 2])
    precision = sweep["precision"][i]
    return {
        "value": float(sweep["threshold"][i]),
        "precision": None if np.isnan(precision) else float(precision),
        "recall": float(sweep["recall"][i]),
        "f1": float(f1[i]),
        "tp": int(sweep["tp"][i]),
        "fp": int(sweep["fp"][i]),
        "fn": int(sweep["fn"][i]),
    }


def _font_path() -> str | None:
    """matplotlib's bundled DejaVu Sans: legible labels without relying on system fonts."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    return str(path) if path.is_file() else None


def _palette(n: int) -> list[tuple[int, int, int]]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [tuple(int(255 * c) for c in cmap(i % 10)[:3]) for i in range(max(n, 1))]


@METRICS.register_module()
class DetectionMetric(BaseMetric):
    """COCO mAP (torchmetrics, faster-coco-eval) and a score-threshold sweep at IoU 0.5.

    ``compute_metrics`` returns ``mAP``, ``mAP50`` and ``mAP75``.
    ``last_report["thresholds"]`` holds ``best_f1`` (``value``, ``precision``, ``recall``,
    ``f1``, ``tp``, ``fp``, ``fn``; the value is stored in the checkpoint for inference),
    a coarse ``sweep`` table and ``per_class`` (AP, AP50, and precision/recall/F1 at the
    best-F1 threshold).

    Args:
        iou_threshold: IoU of a match in the threshold sweep. Defaults to 0.5.
        num_pictures: Images drawn with their boxes by :meth:`write_outputs`.
            Defaults to 8.
        collect_device: mmengine's. Defaults to ``'cpu'``.
        prefix: mmengine's metric-name prefix. Defaults to None.
    """

    default_prefix = None

    def __init__(
        self,
        iou_threshold: float = 0.5,
        num_pictures: int = 8,
        collect_device: str = "cpu",
        prefix: str | None = None,
    ) -> None:
        if importlib.util.find_spec("faster_coco_eval") is None:
            raise ConfigError(
                "DetectionMetric needs the faster-coco-eval package; install it with "
                'pip install -e ".[hf]"'
            )
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.iou_threshold = float(iou_threshold)
        self.num_pictures = int(num_pictures)
        self.last_report: dict = {}
        self.last_arrays: dict = {}

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        inputs = (data_batch or {}).get("inputs")
        for i, sample in enumerate(data_samples):
            gt = sample.get("gt_instances")
            if gt is None:
                raise DataError(
                    f"{sample.get('img_path')} has no ground-truth boxes; DetectionMetric needs "
                    "the test pipeline to pack gt_instances (PackDetInputs after the dataset)"
                )
            pred = sample["pred_instances"]
            entry = {
                "pred_bboxes": torch.as_tensor(pred["bboxes"]).float().reshape(-1, 4).cpu(),
                "pred_scores": torch.as_tensor(pred["scores"]).float().reshape(-1).cpu(),
                "pred_labels": torch.as_tensor(pred["labels"]).long().reshape(-1).cpu(),
                "gt_bboxes": torch.as_tensor(gt["bboxes"]).float().reshape(-1, 4).cpu(),
                "gt_labels": torch.as_tensor(gt["labels"]).long().reshape(-1).cpu(),
                "img_path": sample.get("img_path"),
            }
            # The model's input image, kept for a few pictures only.
            if inputs is not None and len(self.results) < self.num_pictures:
                entry["image"] = torch.as_tensor(inputs[i]).cpu()
            self.results.append(entry)

    def _class_names(self, n: int) -> list[str]:
        """The dataset's class names, padded with indices up to ``n`` classes."""
        names = [str(c) for c in (self.dataset_meta or {}).get("classes") or ()]
        return names + [str(i) for i in range(len(names), n)]

    def compute_metrics(self, results: list) -> dict:
        # Imported here: torchmetrics imports transformers (seconds) when it is installed.
        from torchmetrics.detection import MeanAveragePrecision

        mean_ap = MeanAveragePrecision(
            box_format="xyxy", iou_type="bbox", backend="faster_coco_eval", class_metrics=True
        )
        preds = [
            {"boxes": r["pred_bboxes"], "scores": r["pred_scores"], "labels": r["pred_labels"]}
            for r in results
        ]
        targets = [{"boxes": r["gt_bboxes"], "labels": r["gt_labels"]} for r in results]
        mean_ap.update(preds, targets)
        coco = mean_ap.compute()
        n_gt = int(sum(len(r["gt_labels"]) for r in results))

        def ap(value) -> float:
            # torchmetrics reports -1 where there is no ground truth to score against.
            value = float(value)
            return max(value, 0.0)

        metrics = {"mAP": ap(coco["map"]), "mAP50": ap(coco["map_50"]), "mAP75": ap(coco["map_75"])}

        tp = [
            match_detections(
                r["pred_bboxes"],
                r["pred_scores"],
                r["pred_labels"],
                r["gt_bboxes"],
                r["gt_labels"],
                self.iou_threshold,
            )
            for r in results
        ]
        scores = torch.cat([r["pred_scores"] for r in results]).numpy()
        labels = torch.cat([r["pred_labels"] for r in results]).numpy()
        gt_labels = torch.cat([r["gt_labels"] for r in results]).numpy()
        matched = torch.cat(tp).numpy() if tp else np.zeros(0, bool)
        sweep = threshold_sweep(scores, matched, n_gt)
        best = best_f1(sweep)

        names = self._class_names(int(max(labels.max(initial=-1), gt_labels.max(initial=-1)) + 1))
        ap_per_class = dict(
            zip(coco["classes"].reshape(-1).tolist(), coco["map_per_class"].reshape(-1).tolist())
        )
        per_class = {}
        for c in range(len(names)):
            n_gt_c = int((gt_labels == c).sum())
            is_c = labels == c
            at = threshold_sweep(scores[is_c], matched[is_c], n_gt_c, np.array([best["value"]]))
            precision = at["precision"][0]
            per_class[names[c]] = {
                "AP": ap_per_class.get(c) if ap_per_class.get(c, -1) >= 0 else None,
                "n_gt": n_gt_c,
                "precision": None if np.isnan(precision) else float(precision),
                "recall": float(at["recall"][0]) if n_gt_c else None,
                "f1": float(at["f1"][0]),
            }
        coarse = [
            {
                "threshold": float(sweep["threshold"][i]),
                "precision": None
                if np.isnan(sweep["precision"][i])
                else float(sweep["precision"][i]),
                "recall": float(sweep["recall"][i]),
                "f1": float(sweep["f1"][i]),
            }
            for i in range(0, len(SWEEP), 5)
        ]
        self.last_report = {
            "metrics": metrics,
            "thresholds": {
                "best_f1": best,
                "iou_threshold": self.iou_threshold,
                "sweep": coarse,
                "per_class": per_class,
            },
            "n_test": len(results),
        }
        self.last_arrays = {
            "sweep": sweep,
            "pictures": [r for r in results if "image" in r],
            "class_names": names,
        }
        return dict(metrics)

    # ------------------------------------------------------------------ outputs

    def write_outputs(self, work_dir: Path, results: dict) -> None:
        """results.txt, ``threshold_sweep.png`` and ``detections/*.png``."""
        work_dir = Path(work_dir)
        thresholds = results.get("thresholds") or self.last_report.get("thresholds") or {}
        best = thresholds.get("best_f1") or {}
        lines = results_header(results)
        lines += [
            "",
            f"score-threshold analysis (IoU >= {fmt(thresholds.get('iou_threshold'), 2)}, greedy "
            "matching per image and class):",
            f"  best F1 {fmt(best.get('f1'))} at score >= {fmt(best.get('value'), 2)}: precision "
            f"{fmt(best.get('precision'))}, recall {fmt(best.get('recall'))} "
            f"(TP {fmt(best.get('tp'))}, FP {fmt(best.get('fp'))}, FN {fmt(best.get('fn'))})",
            "  this threshold is stored in the checkpoint and used by tools/infer.py",
            "",
        ]
        rows = [
            (fmt(r["threshold"], 2), r["precision"], r["recall"], r["f1"])
            for r in thresholds.get("sweep", [])
        ]
        lines += ["  " + s for s in format_table(["score >=", "precision", "recall", "F1"], rows)]
        per_class = thresholds.get("per_class") or {}
        if per_class:
            lines += [
                "",
                f"per class (precision/recall/F1 at score >= {fmt(best.get('value'), 2)}):",
            ]
            rows = [
                (name, v.get("AP"), v.get("n_gt"), v.get("precision"), v.get("recall"), v.get("f1"))
                for name, v in per_class.items()
            ]
            lines += [
                "  " + s
                for s in format_table(["class", "AP", "boxes", "precision", "recall", "F1"], rows)
            ]
        lines += [
            "",
            "files: threshold_sweep.png (precision/recall/F1 vs score threshold), detections/ "
            "(predictions >= the best-F1 threshold in colour, ground truth in white)",
        ]
        write_results_txt(work_dir, lines)
        if self.last_arrays:
            self._plot_sweep(self.last_arrays["sweep"], best, work_dir / "threshold_sweep.png")
            self._draw_pictures(work_dir / "detections", float(best.get("value") or 0.5))

    @staticmethod
    def _plot_sweep(sweep: dict, best: dict, path: Path) -> None:
        fig = new_figure(6.4, 4.4)
        ax = fig.add_subplot()
        t = sweep["threshold"]
        ax.plot(t, sweep["precision"], label="precision", color="tab:blue")
        ax.plot(t, sweep["recall"], label="recall", color="tab:orange")
        ax.plot(t, sweep["f1"], label="F1", color="tab:green", linewidth=2)
        if best.get("value") is not None:
            ax.axvline(
                best["value"],
                color="tab:red",
                linestyle="--",
                label=f"best F1 {best['f1']:.3f} @ {best['value']:.2f}",
            )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("score threshold")
        ax.set_ylabel("value")
        ax.set_title("Detections at IoU >= 0.5 vs score threshold")
        ax.legend(loc="lower left", fontsize="small")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        save_figure(fig, path)

    def _draw_pictures(self, out_dir: Path, threshold: float) -> None:
        names = self.last_arrays["class_names"]
        colours = _palette(len(names))
        for index, r in enumerate(self.last_arrays["pictures"]):
            image = r["image"].to(torch.uint8)
            # Small inputs are enlarged so that the labels stay legible.
            scale = max(1, 256 // max(image.shape[-2:]))
            if scale > 1:
                image = image.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
            if len(r["gt_bboxes"]):
                image = draw_bounding_boxes(
                    image, r["gt_bboxes"] * scale, colors=(255, 255, 255), width=1
                )
            keep = r["pred_scores"] >= threshold
            if keep.any():
                labels = r["pred_labels"][keep].tolist()
                text = [
                    f"{names[c] if c < len(names) else c} {s:.2f}"
                    for c, s in zip(labels, r["pred_scores"][keep].tolist())
                ]
                box_colours = [colours[c % len(colours)] for c in labels]
                image = draw_bounding_boxes(
                    image,
                    r["pred_bboxes"][keep] * scale,
                    labels=text,
                    colors=box_colours,
                    width=2,
                    font=_font_path(),
                    font_size=11,
                    label_colors=(255, 255, 255),
                    label_background_colors=box_colours,
                    fill_labels=True,
                )
            stem = Path(r["img_path"]).stem if r.get("img_path") else f"{index:04d}"
            save_png(image.permute(1, 2, 0).numpy(), out_dir / f"{stem}.png")
