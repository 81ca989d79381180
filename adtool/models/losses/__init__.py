from .cosine_feature_loss import CosineFeatureLoss
from .flow_nll_loss import FlowNLLLoss

__all__ = ["CosineFeatureLoss", "FlowNLLLoss"]
