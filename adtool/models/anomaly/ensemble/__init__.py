"""Ensemble of trained anomaly models: members' normalised scores and maps fused by a rule."""

from .model import Ensemble, member_input_size
from .normalizer import MemberNormalizer

__all__ = ["Ensemble"]
