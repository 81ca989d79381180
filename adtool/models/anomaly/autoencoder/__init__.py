"""Convolutional autoencoder baseline."""

from .model import ConvAutoencoder

__all__ = ["ConvAutoencoder"]
