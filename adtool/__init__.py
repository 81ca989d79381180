"""adtool: config-driven industrial anomaly detection."""

from adtool._imports import import_mmengine_optim_without_transformers

__version__ = "0.1.0"

import_mmengine_optim_without_transformers()
