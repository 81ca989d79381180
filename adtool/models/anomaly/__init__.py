from .base import BaseAnomalyModel, MemoryBankModel
from .dfm import DFM
from .fastflow import FastFlow
from .padim import PaDiM
from .patchcore import PatchCore
from .reverse_distillation import ReverseDistillation
from .stfpm import STFPM

__all__ = [
    "BaseAnomalyModel",
    "DFM",
    "FastFlow",
    "MemoryBankModel",
    "PaDiM",
    "PatchCore",
    "ReverseDistillation",
    "STFPM",
]
