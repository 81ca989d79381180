from . import compat
from .hooks import (
    AnomalyCheckpointHook,
    ModelLifecycleHook,
    RichProgressHook,
    TrainingCacheHook,
)
from .loops import FitLoop
from .optim import MultiOptimWrapperConstructor
from .runner import AnomalyRunner, FitOnlyOptimWrapper
from .validation import AnomalyValLoop

compat.apply()

__all__ = [
    "AnomalyCheckpointHook",
    "AnomalyRunner",
    "AnomalyValLoop",
    "FitLoop",
    "FitOnlyOptimWrapper",
    "ModelLifecycleHook",
    "MultiOptimWrapperConstructor",
    "RichProgressHook",
    "TrainingCacheHook",
]
