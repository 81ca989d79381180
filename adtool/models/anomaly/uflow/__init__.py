"""U-Flow: model and the parts only it uses."""

from .model import UFlow
from .multiscale_vit_backbone import MultiScaleViTBackbone
from .u_shaped_flow import UShapedFlowHead

__all__ = ["MultiScaleViTBackbone", "UFlow", "UShapedFlowHead"]
