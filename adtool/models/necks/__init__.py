"""Necks shared by two or more methods (a method's own neck lives in its folder)."""

from .avg_pool_neck import AvgPoolNeck

__all__ = ["AvgPoolNeck"]
