"""GANomaly.

"GANomaly: Semi-Supervised Anomaly Detection via Adversarial Training", Akcay et al.,
ACCV 2018, https://arxiv.org/abs/1805.06725. An encoder-decoder-encoder generator learns,
adversarially, to reconstruct normal images and to re-encode its reconstruction to the
same latent vector; an image scores the squared distance of the two latent vectors (no map).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapperDict

from adtool.errors import ConfigError
from adtool.models.anomaly.base import BaseAnomalyModel
from adtool.models.components.dcgan import dcgan_init
from adtool.registry import MODELS
from adtool.structures import AnomalyDataSample

from .networks import GANomalyDiscriminator, GANomalyGenerator


@MODELS.register_module()
class GANomaly(BaseAnomalyModel):
    """Generator (G_E, G_D, E) + discriminator D, trained with two Adam optimisers.

    Generator loss (paper Eq. 5): ``w_adv * ||f(x) - f(x_hat)||_2 + w_con * ||x - x_hat||_1
    + w_enc * ||z - z_hat||_2``, where ``f`` is D's last feature map (feature matching) and
    the norms are means over elements (the official code's ``l2_loss`` and ``L1Loss``).
    Discriminator loss: binary cross-entropy, real images 1 and reconstructions 0, halved;
    D is re-initialised when that loss falls below 1e-5 (the official code). Score:
    ``mean((z - z_hat)^2)`` over the latent dimensions.

    The config's ``optim_wrapper`` names ``generator`` and ``discriminator`` (built by
    ``MultiOptimWrapperConstructor`` into an ``OptimWrapperDict``).

    Inputs must be normalised to [-1, 1] (mean = std = 127.5): the decoder ends in tanh.

    Args:
        input_size: Side of the square input, a power of two >= 16. Defaults to 32 (the
            paper's MNIST/CIFAR-10 setting).
        latent_dim: Size of z. Defaults to 100.
        base_channels: Channels of the first stage of every DCGAN network. Defaults to 64.
        extra_layers: Extra conv3x3 blocks per network. Defaults to 0.
        adv_weight: w_adv. Defaults to 1.
        con_weight: w_con. Defaults to 50.
        enc_weight: w_enc. Defaults to 1.
        data_preprocessor: Config of the batch normaliser. Defaults to None.
        init_cfg: mmengine init config. Defaults to None.
    """

    def __init__(
        self,
        input_size: int = 32,
        latent_dim: int = 100,
        base_channels: int = 64,
        extra_layers: int = 0,
        adv_weight: float = 1.0,
        con_weight: float = 50.0,
        enc_weight: float = 1.0,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.input_size = int(input_size)
        self.generator = GANomalyGenerator(input_size, latent_dim, base_channels, extra_layers)
        self.discriminator = GANomalyDiscriminator(input_size, base_channels, extra_layers)
        self.generator.apply(dcgan_init)
        self.discriminator.apply(dcgan_init)
        self.adv_weight = float(adv_weight)
        self.con_weight = float(con_weight)
        self.enc_weight = float(enc_weight)

    def _check_inputs(self, inputs: torch.Tensor) -> None:
        if tuple(inputs.shape[-2:]) != (self.input_size, self.input_size):
            raise ConfigError(
                f"GANomaly was built for {self.input_size} px inputs but got "
                f"{tuple(inputs.shape[-2:])}; make model.input_size match the pipelines' Resize"
            )

    def generator_losses(self, inputs: torch.Tensor) -> tuple[dict, torch.Tensor]:
        """Weighted generator loss terms of a batch, and the reconstruction x_hat."""
        self._check_inputs(inputs)
        fake, latent_i, latent_o = self.generator(inputs)
        _, real_features = self.discriminator(inputs)
        _, fake_features = self.discriminator(fake)
        losses = dict(
            loss_adv=self.adv_weight * F.mse_loss(fake_features, real_features),
            loss_con=self.con_weight * F.l1_loss(fake, inputs),
            loss_enc=self.enc_weight * F.mse_loss(latent_o, latent_i),
        )
        return losses, fake

    def discriminator_losses(self, inputs: torch.Tensor, fake: torch.Tensor) -> dict:
        """BCE of D on real images (label 1) and detached reconstructions (label 0), halved."""
        pred_real, _ = self.discriminator(inputs)
        pred_fake, _ = self.discriminator(fake.detach())
        real = F.binary_cross_entropy(pred_real, torch.ones_like(pred_real))
        fake = F.binary_cross_entropy(pred_fake, torch.zeros_like(pred_fake))
        return dict(loss_disc=0.5 * (real + fake))

    def loss(self, inputs: torch.Tensor, data_samples: list[AnomalyDataSample] | None) -> dict:
        """The generator's loss terms (the discriminator's need the step of :meth:`train_step`)."""
        return self.generator_losses(inputs)[0]

    def train_step(self, data: dict, optim_wrapper: OptimWrapperDict) -> dict[str, torch.Tensor]:
        """Update the generator, then the discriminator (the official code's order)."""
        if not isinstance(optim_wrapper, OptimWrapperDict) or set(optim_wrapper.keys()) != {
            "generator",
            "discriminator",
        }:
            raise ConfigError(
                "GANomaly needs optim_wrapper=dict(constructor='MultiOptimWrapperConstructor', "
                "generator=dict(...), discriminator=dict(...))"
            )
        gen_optim, disc_optim = optim_wrapper["generator"], optim_wrapper["discriminator"]
        inputs = self.data_preprocessor(data, True)["inputs"]

        with gen_optim.optim_context(self.generator):
            gen_losses, fake = self.generator_losses(inputs)
        gen_loss, log_vars = self.parse_losses(gen_losses)
        gen_optim.update_params(gen_loss)

        # The generator's backward also reached D's parameters; D steps on its own loss only.
        disc_optim.zero_grad()
        with disc_optim.optim_context(self.discriminator):
            disc_losses = self.discriminator_losses(inputs, fake)
        disc_loss, disc_log = self.parse_losses(disc_losses)
        disc_optim.update_params(disc_loss)
        if disc_loss.item() < 1e-5:
            # D won outright and gives G no gradient any more: start it afresh.
            self.discriminator.apply(dcgan_init)

        log_vars.pop("loss")
        disc_log.pop("loss")
        return dict(log_vars, **disc_log, loss=gen_loss.detach() + disc_loss.detach())

    @torch.no_grad()
    def anomaly_outputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, None]:
        self._check_inputs(inputs)
        _, latent_i, latent_o = self.generator(inputs)
        return (latent_i - latent_o).pow(2).flatten(1).mean(1), None
