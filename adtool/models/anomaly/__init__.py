from .base import BaseAnomalyModel, MemoryBankModel
from .patchcore import PatchCore

__all__ = ["BaseAnomalyModel", "MemoryBankModel", "PatchCore"]
