"""DRAEM: discriminatively trained reconstruction embedding (optionally with SSPCAB)."""

from .model import DRAEM

__all__ = ["DRAEM"]
