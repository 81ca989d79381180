"""DCGAN encoder and decoder (Radford et al., ICLR 2016, arXiv 1511.06434).

The networks of GANomaly (Akcay et al. 2018: the generator's two encoders and decoder, the
discriminator) and of the convolutional autoencoder baseline. A square input of side
``2**k`` (>= 16) is halved by 4x4 stride-2 convolutions down to 4x4, with the channels
doubling from ``base_channels``; a last 4x4 convolution maps the 4x4 grid to a 1x1 latent
vector of ``latent_dim`` channels. The decoder mirrors it with transposed convolutions.
"""

from __future__ import annotations

from torch import Tensor, nn

from adtool.errors import ConfigError


def _check_size(input_size: int, owner: str) -> int:
    size = int(input_size)
    if size < 16 or size & (size - 1):
        raise ConfigError(
            f"{owner} needs a square input whose side is a power of two >= 16, got "
            f"{input_size}; set model.input_size (and the pipelines' Resize) to e.g. 64 or 256"
        )
    return size


def pyramid_channels(input_size: int, base_channels: int) -> list[int]:
    """Channels after each stride-2 stage, from ``input_size`` down to 4x4."""
    channels, size = [base_channels], input_size // 2
    while size > 4:
        channels.append(channels[-1] * 2)
        size //= 2
    return channels


class DCGANEncoder(nn.Module):
    """(B, C, S, S) images -> (B, latent_dim, 1, 1) latent vectors (or 4x4 features).

    conv4x4/2 + LeakyReLU(0.2); then [conv4x4/2 + BN + LeakyReLU(0.2)] down to 4x4;
    ``extra_layers`` conv3x3 blocks at the first width; a final conv4x4 (no padding) to
    ``latent_dim`` channels unless ``final_conv=False`` (GANomaly's discriminator keeps
    the 4x4 features and adds its own classifier).

    Args:
        input_size: Side of the square input, a power of two >= 16.
        in_channels: Input channels.
        latent_dim: Channels of the latent vector.
        base_channels: Channels of the first stage; doubled at every stage.
        extra_layers: Extra conv3x3 + BN + LeakyReLU blocks. Defaults to 0.
        final_conv: End with the conv to the latent vector. Defaults to True.
    """

    def __init__(
        self,
        input_size: int,
        in_channels: int,
        latent_dim: int,
        base_channels: int,
        extra_layers: int = 0,
        final_conv: bool = True,
    ) -> None:
        super().__init__()
        size = _check_size(input_size, type(self).__name__)
        channels = pyramid_channels(size, base_channels)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, channels[0], 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for _ in range(extra_layers):
            layers += [
                nn.Conv2d(channels[0], channels[0], 3, 1, 1, bias=False),
                nn.BatchNorm2d(channels[0]),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            layers += [
                nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        self.features = nn.Sequential(*layers)
        self.out_channels = channels[-1]
        self.final = (
            nn.Conv2d(channels[-1], latent_dim, 4, 1, 0, bias=False) if final_conv else None
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        return x if self.final is None else self.final(x)


class DCGANDecoder(nn.Module):
    """(B, latent_dim, 1, 1) latent vectors -> (B, C, S, S) images in [-1, 1] (tanh).

    convT4x4 (no padding) to 4x4 + BN + ReLU; [convT4x4/2 + BN + ReLU] up to S/2 with the
    channels halving; ``extra_layers`` conv3x3 blocks; convT4x4/2 to ``out_channels``, tanh.

    Args:
        input_size: Side of the square output, a power of two >= 16.
        latent_dim: Channels of the latent vector.
        out_channels: Output channels.
        base_channels: Channels of the last stage (the encoder's first).
        extra_layers: Extra conv3x3 + BN + ReLU blocks. Defaults to 0.
    """

    def __init__(
        self,
        input_size: int,
        latent_dim: int,
        out_channels: int,
        base_channels: int,
        extra_layers: int = 0,
    ) -> None:
        super().__init__()
        size = _check_size(input_size, type(self).__name__)
        channels = pyramid_channels(size, base_channels)[::-1]
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, channels[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(inplace=True),
        ]
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
        for _ in range(extra_layers):
            layers += [
                nn.Conv2d(channels[-1], channels[-1], 3, 1, 1, bias=False),
                nn.BatchNorm2d(channels[-1]),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.ConvTranspose2d(channels[-1], out_channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.layers = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.layers(z)


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation: conv weights N(0, 0.02), BN weights N(1, 0.02), biases 0."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
