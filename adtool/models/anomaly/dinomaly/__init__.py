"""Dinomaly: model and the parts only it uses."""

from .bottleneck import NoisyBottleneck
from .decoder import LinearAttention, LinearAttentionBlock, LinearAttentionDecoder
from .loss import LooseCosineLoss
from .model import Dinomaly

# Registers the StableAdamW optimiser (OPTIMIZERS, not MODELS, so it is not in __all__).
from .stable_adamw import StableAdamW  # noqa: F401

__all__ = [
    "Dinomaly",
    "LinearAttention",
    "LinearAttentionBlock",
    "LinearAttentionDecoder",
    "LooseCosineLoss",
    "NoisyBottleneck",
]
