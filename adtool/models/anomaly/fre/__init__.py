"""FRE: model and the parts only it uses."""

from .model import FRE
from .tied_linear_ae import TiedLinearAE

__all__ = ["FRE", "TiedLinearAE"]
