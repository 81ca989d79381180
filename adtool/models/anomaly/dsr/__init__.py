"""DSR: dual subspace re-projection network (general VQ model + object-specific decoder)."""

from .model import DSR

__all__ = ["DSR"]
