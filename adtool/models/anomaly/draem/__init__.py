"""DRAEM: discriminatively trained reconstruction embedding (optionally with SSPCAB)."""

from .model import DRAEM
from .networks import SSPCAB, DiscriminativeNet, ReconstructiveNet

__all__ = ["DRAEM", "SSPCAB", "DiscriminativeNet", "ReconstructiveNet"]
