"""Heads shared by two or more methods (a method's own head lives in its folder)."""

from .feature_distance_head import FeatureDistanceHead
from .reverse_decoder import ReverseDecoder

__all__ = ["FeatureDistanceHead", "ReverseDecoder"]
