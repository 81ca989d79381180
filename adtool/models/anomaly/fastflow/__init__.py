"""FastFlow: model and the parts only it uses."""

from .flow2d_head import Flow2DHead
from .flow_nll_loss import FlowNLLLoss
from .layer_norm_neck import LayerNormNeck
from .model import FastFlow

__all__ = ["FastFlow", "Flow2DHead", "FlowNLLLoss", "LayerNormNeck"]
