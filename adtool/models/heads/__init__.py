from .feature_distance_head import FeatureDistanceHead
from .flow2d_head import Flow2DHead
from .gaussian_head import GaussianHead
from .knn_memory_head import KNNMemoryHead
from .pca_feature_head import PCAFeatureHead
from .reverse_decoder import ReverseDecoder

__all__ = [
    "FeatureDistanceHead",
    "Flow2DHead",
    "GaussianHead",
    "KNNMemoryHead",
    "PCAFeatureHead",
    "ReverseDecoder",
]
