"""GANomaly: model (its generator and discriminator live in networks.py)."""

from .model import GANomaly

__all__ = ["GANomaly"]
