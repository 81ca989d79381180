"""Top-1 / top-5 accuracy and the confidence-threshold analysis of a classifier."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from adtool.evaluation.task_report import (
    fmt,
    format_table,
    plot_confusion_matrix,
    results_header,
    write_results_txt,
)
from adtool.registry import METRICS
from adtool.visualization.canvas import new_figure, save_figure

DEFAULT_CONFIDENCES = tuple(round(float(t), 2) for t in np.arange(0.0, 1.0, 0.05)) + (0.99,)


def confidence_sweep(
    scores: torch.Tensor, labels: torch.Tensor, thresholds: Sequence[float]
) -> list[dict]:
    """Accuracy on the images whose top score is >= t, and their share (coverage), per t.

    A deployment that refuses low-confidence images (sends them to a person) trades
    coverage for accuracy; this table is that trade.

    Args:
        scores: (N, C) class probabilities.
        labels: (N,) true labels.
        thresholds: Confidence thresholds.

    Returns:
        One ``{"threshold", "coverage", "accuracy", "n"}`` per threshold; ``accuracy`` is
        None where no image is kept.
    """
    confidence, predicted = scores.max(dim=1)
    correct = predicted == labels
    rows = []
    for t in thresholds:
        kept = confidence >= t
        n = int(kept.sum())
        rows.append(
            {
                "threshold": float(t),
                "coverage": n / max(len(labels), 1),
                "accuracy": float(correct[kept].float().mean()) if n else None,
                "n": n,
            }
        )
    return rows


def threshold_for_accuracy(sweep: list[dict], target: float) -> dict | None:
    """The lowest threshold of ``sweep`` whose kept images reach ``target`` accuracy."""
    for row in sweep:
        if row["accuracy"] is not None and row["accuracy"] >= target:
            return row
    return None


@METRICS.register_module()
class ClassificationMetric(BaseMetric):
    """Top-1 and top-5 accuracy (torchmetrics), with a confidence-threshold analysis.

    ``compute_metrics`` returns ``accuracy`` and ``top5_accuracy`` (top-k with k = the
    number of classes when there are fewer than 5). ``last_report["thresholds"]`` holds
    the confidence sweep (accuracy vs coverage), the lowest threshold reaching each
    target accuracy, per-class precision/recall/F1 and the confusion matrix.

    Args:
        confidence_thresholds: Thresholds of the sweep. Defaults to 0.00, 0.05, ..., 0.95,
            0.99.
        target_accuracies: Accuracies for which the lowest sufficient threshold is
            reported. Defaults to (0.9, 0.95, 0.99).
        collect_device: mmengine's gather device. Defaults to ``'cpu'``.
        prefix: Logger key prefix. Defaults to None.
    """

    # Logged keys are the contract's names as they are (no "classification/" prefix).
    default_prefix = ""

    def __init__(
        self,
        confidence_thresholds: Sequence[float] = DEFAULT_CONFIDENCES,
        target_accuracies: Sequence[float] = (0.9, 0.95, 0.99),
        collect_device: str = "cpu",
        prefix: str | None = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.confidence_thresholds = tuple(float(t) for t in confidence_thresholds)
        self.target_accuracies = tuple(float(t) for t in target_accuracies)
        self.last_report: dict = {}
        self.last_arrays: dict = {}

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            self.results.append(
                {
                    "scores": torch.as_tensor(sample["pred_scores"]).float().cpu(),
                    "label": int(sample["gt_label"]),
                    "img_path": sample.get("img_path"),
                }
            )

    def _class_names(self, n: int) -> list[str]:
        classes = (self.dataset_meta or {}).get("classes")
        if classes is not None and len(classes) == n:
            return [str(c) for c in classes]
        return [str(i) for i in range(n)]

    def compute_metrics(self, results: list) -> dict:
        # Imported here: torchmetrics imports transformers (seconds) when it is installed.
        from torchmetrics.functional.classification import (
            multiclass_accuracy,
            multiclass_confusion_matrix,
            multiclass_f1_score,
            multiclass_precision,
            multiclass_recall,
        )

        scores = torch.stack([r["scores"] for r in results])
        labels = torch.as_tensor([r["label"] for r in results], dtype=torch.long)
        n_classes = scores.shape[1]
        names = self._class_names(n_classes)
        kwargs = {"num_classes": n_classes, "validate_args": False}
        accuracy = float(multiclass_accuracy(scores, labels, top_k=1, average="micro", **kwargs))
        top5 = float(
            multiclass_accuracy(scores, labels, top_k=min(5, n_classes), average="micro", **kwargs)
        )
        precision = multiclass_precision(scores, labels, average="none", **kwargs)
        recall = multiclass_recall(scores, labels, average="none", **kwargs)
        f1 = multiclass_f1_score(scores, labels, average="none", **kwargs)
        confusion = multiclass_confusion_matrix(scores, labels, **kwargs)
        support = torch.bincount(labels, minlength=n_classes)
        sweep = confidence_sweep(scores, labels, self.confidence_thresholds)
        targets = {}
        for target in self.target_accuracies:
            row = threshold_for_accuracy(sweep, target)
            targets[f"{target:g}"] = None if row is None else dict(row)
        metrics = {"accuracy": accuracy, "top5_accuracy": top5}
        self.last_report = {
            "metrics": metrics,
            "thresholds": {
                "confidence_sweep": sweep,
                "accuracy_targets": targets,
                "per_class": {
                    name: {
                        "precision": float(precision[i]),
                        "recall": float(recall[i]),
                        "f1": float(f1[i]),
                        "support": int(support[i]),
                    }
                    for i, name in enumerate(names)
                },
                "confusion_matrix": {"classes": names, "matrix": confusion.tolist()},
            },
            "n_test": len(results),
        }
        self.last_arrays = {
            "scores": scores.numpy(),
            "labels": labels.numpy(),
            "img_paths": [r["img_path"] for r in results],
        }
        return dict(metrics)

    def write_outputs(self, work_dir: Path, results: dict) -> None:
        """results.txt, confidence_sweep.png and confusion_matrix.png in ``work_dir``."""
        work_dir = Path(work_dir)
        th = results.get("thresholds") or self.last_report.get("thresholds", {})
        lines = results_header(results)
        lines += ["", "confidence sweep (images with top score >= threshold):"]
        lines += format_table(
            ["threshold", "coverage", "accuracy", "images"],
            [
                [r["threshold"], r["coverage"], r["accuracy"], r["n"]]
                for r in th["confidence_sweep"]
            ],
        )
        lines += ["", "lowest threshold reaching a target accuracy:"]
        for target, row in th["accuracy_targets"].items():
            if row is None:
                lines.append(f"  accuracy >= {target}: not reached at any threshold")
            else:
                lines.append(
                    f"  accuracy >= {target}: threshold {fmt(row['threshold'], 2)} "
                    f"(coverage {fmt(row['coverage'])}, accuracy {fmt(row['accuracy'])})"
                )
        lines += ["", "per class:"]
        lines += format_table(
            ["class", "precision", "recall", "f1", "support"],
            [
                [name, v["precision"], v["recall"], v["f1"], v["support"]]
                for name, v in th["per_class"].items()
            ],
        )
        cm = th["confusion_matrix"]
        lines += ["", "confusion matrix (rows = ground truth, columns = predicted):"]
        lines += format_table(
            ["", *cm["classes"]], [[name, *row] for name, row in zip(cm["classes"], cm["matrix"])]
        )
        write_results_txt(work_dir, lines)
        plot_confusion_matrix(
            np.asarray(cm["matrix"]), cm["classes"], work_dir / "confusion_matrix.png"
        )
        self._plot_sweep(th["confidence_sweep"], work_dir / "confidence_sweep.png")

    @staticmethod
    def _plot_sweep(sweep: list[dict], path: Path) -> None:
        t = [r["threshold"] for r in sweep]
        acc = [np.nan if r["accuracy"] is None else r["accuracy"] for r in sweep]
        cov = [r["coverage"] for r in sweep]
        fig = new_figure(6.4, 4.2)
        ax = fig.add_subplot()
        ax.plot(t, acc, marker="o", markersize=3, label="accuracy of kept images")
        ax.plot(t, cov, marker="s", markersize=3, label="coverage (share kept)")
        ax.set_xlabel("confidence threshold (top softmax score)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title("Accuracy vs coverage")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        save_figure(fig, path)
