"""Metrics registered in adtool's METRICS registry."""

from adtool.evaluation.metrics.anomaly_metric import AnomalyMetric
from adtool.evaluation.metrics.classification import ClassificationMetric
from adtool.evaluation.metrics.detection import DetectionMetric
from adtool.evaluation.metrics.segmentation import SegmentationMetric
from adtool.evaluation.metrics.super_resolution import SuperResolutionMetric

__all__ = [
    "AnomalyMetric",
    "ClassificationMetric",
    "DetectionMetric",
    "SegmentationMetric",
    "SuperResolutionMetric",
]
