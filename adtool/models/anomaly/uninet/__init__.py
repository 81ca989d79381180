"""UniNet: model and the parts only it uses (its student decoder is in heads/)."""

from .attention_bottleneck import AttentionBottleneckNeck
from .loss import UniNetLoss
from .model import UniNet

__all__ = ["AttentionBottleneckNeck", "UniNet", "UniNetLoss"]
