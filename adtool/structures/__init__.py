from .anomaly_data_sample import AnomalyDataSample

__all__ = ["AnomalyDataSample"]
