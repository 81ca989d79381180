from .anomaly import *  # noqa: F403
from .backbones import *  # noqa: F403
from .data_preprocessor import AnomalyDataPreprocessor
from .heads import *  # noqa: F403
from .hf import *  # noqa: F403
from .losses import *  # noqa: F403
from .necks import *  # noqa: F403
from .postprocess import PostProcessor

__all__ = ["AnomalyDataPreprocessor", "PostProcessor"]
