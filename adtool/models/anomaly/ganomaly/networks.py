"""GANomaly's networks: encoder-decoder-encoder generator and DCGAN discriminator."""

from __future__ import annotations

import torch
from torch import nn

from adtool.models.components.dcgan import DCGANDecoder, DCGANEncoder


class GANomalyGenerator(nn.Module):
    """x -> (x_hat = G_D(G_E(x)), z = G_E(x), z_hat = E(x_hat)) (Akcay et al. 2018, Fig. 2)."""

    def __init__(
        self, input_size: int, latent_dim: int, base_channels: int, extra_layers: int = 0
    ) -> None:
        super().__init__()
        self.encoder1 = DCGANEncoder(input_size, 3, latent_dim, base_channels, extra_layers)
        self.decoder = DCGANDecoder(input_size, latent_dim, 3, base_channels, extra_layers)
        self.encoder2 = DCGANEncoder(input_size, 3, latent_dim, base_channels, extra_layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        latent_i = self.encoder1(x)
        fake = self.decoder(latent_i)
        return fake, latent_i, self.encoder2(fake)


class GANomalyDiscriminator(nn.Module):
    """DCGAN encoder whose 4x4 features feed the adversarial (feature-matching) loss and a
    conv4x4 + sigmoid real/fake classifier."""

    def __init__(self, input_size: int, base_channels: int, extra_layers: int = 0) -> None:
        super().__init__()
        self.features = DCGANEncoder(
            input_size, 3, 1, base_channels, extra_layers, final_conv=False
        )
        self.classifier = nn.Sequential(
            nn.Conv2d(self.features.out_channels, 1, 4, 1, 0, bias=False), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images -> (probability of real (B,), features (B, C, 4, 4))."""
        features = self.features(x)
        return self.classifier(features).flatten(), features
