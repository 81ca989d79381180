"""Ensemble of trained anomaly models: members' normalised scores and maps fused by a rule."""

from .model import Ensemble

__all__ = ["Ensemble"]
