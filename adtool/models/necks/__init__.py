from .patch_aggregator import LocalPatchAggregator

__all__ = ["LocalPatchAggregator"]
