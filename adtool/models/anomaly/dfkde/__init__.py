"""DFKDE: model and the parts only it uses."""

from .kde_head import KDEHead
from .model import DFKDE

__all__ = ["DFKDE", "KDEHead"]
