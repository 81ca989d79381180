"""Semantic segmentation: mIoU, pixel accuracy, per-class IoU and the confusion matrix.

The pixel confusion matrix (torchmetrics ``multiclass_confusion_matrix``, rows = ground
truth, columns = prediction, ignored pixels left out) is summed over the split; every
number comes from it: IoU_k = TP / (TP + FP + FN), mIoU the mean over the classes that
occur (in the ground truth or the predictions), pixel accuracy = trace / total.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from adtool.errors import ConfigError, DataError
from adtool.evaluation.task_report import (
    format_table,
    plot_confusion_matrix,
    results_header,
    save_png,
    write_results_txt,
)
from adtool.fileio import atomic_write_text
from adtool.registry import METRICS
from adtool.visualization.canvas import new_figure, save_figure

#: Largest class count whose confusion matrix is copied into results.json.
MAX_JSON_CLASSES = 30


def iou_from_confusion(confusion: np.ndarray) -> dict[str, np.ndarray | float]:
    """Per-class IoU, precision, recall and the summary numbers of a (K, K) matrix.

    Args:
        confusion: (K, K) pixel counts, rows = ground truth, columns = prediction.

    Returns:
        ``iou``, ``precision``, ``recall`` (K,) with NaN where undefined (IoU: class
        neither in the ground truth nor predicted), ``mIoU`` (NaN-mean of ``iou``) and
        ``pixel_accuracy``.
    """
    m = np.asarray(confusion, np.float64)
    tp = np.diag(m)
    gt = m.sum(1)
    pred = m.sum(0)
    union = gt + pred - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        precision = np.where(pred > 0, tp / pred, np.nan)
        recall = np.where(gt > 0, tp / gt, np.nan)
    total = m.sum()
    return {
        "iou": iou,
        "precision": precision,
        "recall": recall,
        "mIoU": float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0,
        "pixel_accuracy": float(tp.sum() / total) if total > 0 else 0.0,
    }


def _none(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)


def palette(n: int) -> np.ndarray:
    """(n, 3) uint8 colours; class 0 (often background) dark grey, then tab10 (tab20 past 11)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 11 else "tab20"]
    colours = [(64, 64, 64)] + [tuple(int(255 * c) for c in cmap(i % cmap.N)[:3]) for i in range(n)]
    return np.array(colours[:n], np.uint8)


@METRICS.register_module()
class SegmentationMetric(BaseMetric):
    """mIoU and pixel accuracy (torchmetrics confusion matrix), per-class IoU table.

    ``compute_metrics`` returns ``mIoU`` and ``pixel_accuracy``.
    ``last_report["thresholds"]`` holds ``per_class`` (IoU, precision, recall, pixel
    count per class) and, for up to 30 classes, ``confusion_matrix``.

    Args:
        num_classes: Number of classes. Defaults to None (the dataset's ``classes``).
        ignore_index: Ground-truth label that is not scored. Defaults to 255.
        num_pictures: Images drawn with ground truth and prediction overlaid by
            :meth:`write_outputs`. Defaults to 8.
        collect_device: mmengine's. Defaults to ``'cpu'``.
        prefix: mmengine's metric-name prefix. Defaults to None.
    """

    default_prefix = None

    def __init__(
        self,
        num_classes: int | None = None,
        ignore_index: int = 255,
        num_pictures: int = 8,
        collect_device: str = "cpu",
        prefix: str | None = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.ignore_index = int(ignore_index)
        self.num_pictures = int(num_pictures)
        self.last_report: dict = {}
        self.last_arrays: dict = {}

    @property
    def class_names(self) -> list[str]:
        names = [str(c) for c in (self.dataset_meta or {}).get("classes") or ()]
        n = self.num_classes if self.num_classes is not None else len(names)
        if n == 0:
            raise ConfigError(
                "SegmentationMetric needs num_classes (or a dataset with metainfo 'classes')"
            )
        return (names + [str(i) for i in range(len(names), n)])[:n]

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        # Imported here: torchmetrics imports transformers (seconds) when it is installed.
        from torchmetrics.functional.classification import multiclass_confusion_matrix

        n = len(self.class_names)
        inputs = (data_batch or {}).get("inputs")
        for i, sample in enumerate(data_samples):
            if sample.get("gt_sem_seg") is None:
                raise DataError(
                    f"{sample.get('img_path')} has no ground-truth mask; SegmentationMetric needs "
                    "the test pipeline to load it (LoadSegMask ... PackSegInputs)"
                )
            gt = torch.as_tensor(sample["gt_sem_seg"]).long().squeeze()
            pred = torch.as_tensor(sample["pred_sem_seg"]).long().squeeze()
            if pred.shape != gt.shape:
                raise DataError(
                    f"prediction {tuple(pred.shape)} and mask {tuple(gt.shape)} of "
                    f"{sample.get('img_path')} differ in size; resize both in the pipeline"
                )
            valid = gt != self.ignore_index
            if valid.any() and int(gt[valid].max()) >= n:
                raise DataError(
                    f"mask class {int(gt[valid].max())} in {sample.get('img_path')} is outside "
                    f"0..{n - 1}; set num_classes / the dataset classes to match the masks"
                )
            confusion = multiclass_confusion_matrix(
                pred.flatten(), gt.flatten(), num_classes=n, ignore_index=self.ignore_index
            )
            entry = {
                "confusion": confusion.numpy().astype(np.int64),
                "img_path": sample.get("img_path"),
            }
            if inputs is not None and len(self.results) < self.num_pictures:
                entry.update(image=torch.as_tensor(inputs[i]).cpu(), gt=gt.cpu(), pred=pred.cpu())
            self.results.append(entry)

    def compute_metrics(self, results: list) -> dict:
        names = self.class_names
        confusion = np.sum([r["confusion"] for r in results], axis=0)
        scores = iou_from_confusion(confusion)
        per_class = {
            name: {
                "IoU": _none(scores["iou"][k]),
                "precision": _none(scores["precision"][k]),
                "recall": _none(scores["recall"][k]),
                "pixels": int(confusion[k].sum()),
            }
            for k, name in enumerate(names)
        }
        metrics = {"mIoU": scores["mIoU"], "pixel_accuracy": scores["pixel_accuracy"]}
        thresholds: dict = {"per_class": per_class}
        if len(names) <= MAX_JSON_CLASSES:
            thresholds["confusion_matrix"] = {"classes": names, "matrix": confusion.tolist()}
        self.last_report = {"metrics": metrics, "thresholds": thresholds, "n_test": len(results)}
        self.last_arrays = {
            "confusion": confusion,
            "class_names": names,
            "pictures": [r for r in results if "image" in r],
        }
        return dict(metrics)

    # ------------------------------------------------------------------ outputs

    def write_outputs(self, work_dir: Path, results: dict) -> None:
        """results.txt, confusion_matrix.png/.csv, per_class_iou.png and overlays/."""
        work_dir = Path(work_dir)
        per_class = (results.get("thresholds") or {}).get("per_class") or {}
        lines = results_header(results)
        lines += ["", f"per class (ignored label {self.ignore_index} not scored):"]
        rows = [
            (name, v["IoU"], v["precision"], v["recall"], v["pixels"])
            for name, v in per_class.items()
        ]
        lines += [
            "  " + s for s in format_table(["class", "IoU", "precision", "recall", "pixels"], rows)
        ]
        confusion = self.last_arrays.get("confusion")
        names = self.last_arrays.get("class_names") or list(per_class)
        if confusion is not None and len(names) <= 20:
            lines += ["", "confusion matrix (pixels; rows = ground truth, columns = prediction):"]
            table = [(name, *confusion[k].tolist()) for k, name in enumerate(names)]
            lines += ["  " + s for s in format_table(["gt \\ pred", *names], table)]
        lines += [
            "",
            "files: confusion_matrix.png/.csv, per_class_iou.png, overlays/ (image | ground "
            "truth | prediction; ignored pixels black)",
        ]
        write_results_txt(work_dir, lines)
        if confusion is None:
            return
        plot_confusion_matrix(
            confusion,
            names,
            work_dir / "confusion_matrix.png",
            title="Pixel confusion matrix (row-normalised colour)",
        )
        csv = ["gt\\pred," + ",".join(names)]
        csv += [
            f"{name}," + ",".join(str(int(v)) for v in confusion[k]) for k, name in enumerate(names)
        ]
        atomic_write_text(work_dir / "confusion_matrix.csv", "\n".join(csv) + "\n")
        self._plot_iou(per_class, work_dir / "per_class_iou.png")
        self._draw_pictures(work_dir / "overlays", len(names))

    @staticmethod
    def _plot_iou(per_class: dict, path: Path) -> None:
        names = list(per_class)
        values = [per_class[n]["IoU"] if per_class[n]["IoU"] is not None else 0.0 for n in names]
        fig = new_figure(max(4.0, 0.5 * len(names) + 2.0), 4.0)
        ax = fig.add_subplot()
        ax.bar(range(len(names)), values, color="tab:blue")
        ax.set_xticks(range(len(names)), labels=names, rotation=45, ha="right")
        ax.set_ylim(0, 1)
        ax.set_ylabel("IoU")
        ax.set_title("IoU per class")
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        save_figure(fig, path)

    def _draw_pictures(self, out_dir: Path, n_classes: int) -> None:
        colours = palette(n_classes)
        for index, r in enumerate(self.last_arrays["pictures"]):
            image = r["image"].permute(1, 2, 0).numpy().astype(np.float64)
            h, w = r["gt"].shape
            image = image[:h, :w]
            panels = [image]
            for labels in (r["gt"].numpy(), r["pred"].numpy()):
                valid = labels != self.ignore_index
                colour = colours[np.where(valid, labels, 0).clip(0, n_classes - 1)]
                blended = 0.45 * image + 0.55 * colour
                panels.append(np.where(valid[..., None], blended, 0.0))
            gap = np.full((h, 2, 3), 255.0)
            row = np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
            scale = max(1, 192 // max(h, w))
            row = row.repeat(scale, 0).repeat(scale, 1)
            stem = Path(r["img_path"]).stem if r.get("img_path") else f"{index:04d}"
            save_png(row.clip(0, 255).astype(np.uint8), out_dir / f"{stem}.png")
