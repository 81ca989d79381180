"""Anomaly detection metrics, thresholds and the results report.

Importing this package registers :class:`AnomalyMetric` in adtool's METRICS registry.
"""

from adtool.evaluation.functional import (
    aupro,
    f1_max,
    has_both_classes,
    image_aupr,
    image_auroc,
    per_defect_auroc,
    pixel_auroc,
    pixel_f1_max,
    pr_curve,
    roc_curve,
)
from adtool.evaluation.metrics import AnomalyMetric
from adtool.evaluation.report import build_report, format_results_txt, load_results, write_report
from adtool.evaluation.thresholds import (
    compute_thresholds,
    confusion_at,
    confusion_report,
    f1_percentile_threshold,
    f1_uniform_threshold,
    percentile_threshold,
    youden_j_threshold,
)

__all__ = [
    "AnomalyMetric",
    "aupro",
    "build_report",
    "compute_thresholds",
    "confusion_at",
    "confusion_report",
    "f1_max",
    "f1_percentile_threshold",
    "f1_uniform_threshold",
    "format_results_txt",
    "has_both_classes",
    "image_aupr",
    "image_auroc",
    "load_results",
    "per_defect_auroc",
    "percentile_threshold",
    "pixel_auroc",
    "pixel_f1_max",
    "pr_curve",
    "roc_curve",
    "write_report",
    "youden_j_threshold",
]
