"""CS-Flow: model and the parts only it uses."""

from .cross_scale_flow import (
    CrossConvolutions,
    CrossScaleCoupling,
    ParallelPermute,
    cross_scale_flow,
)
from .model import CSFlow
from .stage_backbone import TimmStageBackbone

__all__ = [
    "CSFlow",
    "CrossConvolutions",
    "CrossScaleCoupling",
    "ParallelPermute",
    "TimmStageBackbone",
    "cross_scale_flow",
]
