"""adtool: config-driven industrial anomaly detection."""

__version__ = "0.1.0"
