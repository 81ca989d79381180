"""Dinomaly: model and the parts only it uses."""

from .bottleneck import NoisyBottleneck
from .decoder import LinearAttention, LinearAttentionBlock, LinearAttentionDecoder
from .loss import LooseCosineLoss
from .model import Dinomaly
from .stable_adamw import StableAdamW

__all__ = [
    "Dinomaly",
    "LinearAttention",
    "LinearAttentionBlock",
    "LinearAttentionDecoder",
    "LooseCosineLoss",
    "NoisyBottleneck",
    "StableAdamW",
]
