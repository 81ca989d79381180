"""DFM: model and the parts only it uses."""

from .model import DFM
from .pca_feature_head import PCAFeatureHead

__all__ = ["DFM", "PCAFeatureHead"]
