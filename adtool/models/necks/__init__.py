from .avg_pool_neck import AvgPoolNeck
from .channel_subset import ChannelSubsetNeck
from .layer_norm_neck import LayerNormNeck
from .ocbe_neck import OCBENeck
from .patch_aggregator import LocalPatchAggregator

__all__ = ["AvgPoolNeck", "ChannelSubsetNeck", "LayerNormNeck", "LocalPatchAggregator", "OCBENeck"]
