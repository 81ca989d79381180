from .knn_memory_head import KNNMemoryHead

__all__ = ["KNNMemoryHead"]
