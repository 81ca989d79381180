from . import compat
from .hooks import AnomalyCheckpointHook, RichProgressHook
from .loops import FitLoop
from .runner import AnomalyRunner, FitOnlyOptimWrapper

compat.apply()

__all__ = [
    "AnomalyCheckpointHook",
    "AnomalyRunner",
    "FitLoop",
    "FitOnlyOptimWrapper",
    "RichProgressHook",
]
