from .timm_backbone import TimmBackbone
from .weights import load_timm_state_dict, resolve_backbone_weights

__all__ = ["TimmBackbone", "load_timm_state_dict", "resolve_backbone_weights"]
