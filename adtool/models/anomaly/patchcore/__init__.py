"""PatchCore: model and the parts only it uses."""

from .knn_memory_head import KNNMemoryHead
from .model import PatchCore
from .patch_aggregator import LocalPatchAggregator

__all__ = ["KNNMemoryHead", "LocalPatchAggregator", "PatchCore"]
