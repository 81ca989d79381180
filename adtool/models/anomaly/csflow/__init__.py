"""CS-Flow: model and the parts only it uses (the flow's modules in cross_scale_flow.py)."""

from .model import CSFlow
from .stage_backbone import TimmStageBackbone

__all__ = ["CSFlow", "TimmStageBackbone"]
