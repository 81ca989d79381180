"""PaDiM: model and the parts only it uses."""

from .channel_subset import ChannelSubsetNeck
from .gaussian_head import GaussianHead
from .model import PaDiM

__all__ = ["ChannelSubsetNeck", "GaussianHead", "PaDiM"]
