from .timm_backbone import TimmBackbone
from .vit_token_backbone import ViTTokenBackbone
from .weights import load_timm_state_dict, resolve_backbone_weights

__all__ = ["TimmBackbone", "ViTTokenBackbone", "load_timm_state_dict", "resolve_backbone_weights"]
