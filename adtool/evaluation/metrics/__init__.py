"""Metrics registered in adtool's METRICS registry."""

from adtool.evaluation.metrics.anomaly_metric import AnomalyMetric

__all__ = ["AnomalyMetric"]
