"""CFlow: model and the parts only it uses."""

from .model import CFlow

__all__ = ["CFlow"]
