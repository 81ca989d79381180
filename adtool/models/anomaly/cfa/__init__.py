"""CFA: model and the parts only it uses."""

from .descriptor import CoordConv2d, PatchDescriptor
from .loss import CFALoss
from .model import CFA

__all__ = ["CFA", "CFALoss", "CoordConv2d", "PatchDescriptor"]
