from . import compat
from .hooks import RichProgressHook
from .loops import FitLoop
from .runner import AnomalyRunner, FitOnlyOptimWrapper

compat.apply()

__all__ = ["AnomalyRunner", "FitLoop", "FitOnlyOptimWrapper", "RichProgressHook"]
