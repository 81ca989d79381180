"""DSR's general object-appearance model: a two-level VQ-VAE (VQ-VAE-2 style) and its
codebook-space anomaly generator.

Layer plan of the official code (VitjanZ/DSR_anomaly_detection, ``discrete_model.py``),
kept in the same order and shapes so that its ImageNet-pretrained file loads by key order:
a bottom encoder (two stride-2 convolutions, /4), a top encoder (one more, /8), a codebook
per level (``K_lo`` on the top features, ``K_hi`` on the bottom features conditioned on
the upsampled top quantisation) and the general appearance decoder on both quantised maps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Residual(nn.Module):
    """``x + conv1x1(relu(conv3x3(relu(x))))`` (VQ-VAE's residual block, no biases)."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, hidden, 3, padding=1, bias=False),
            nn.ReLU(),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ResidualStack(nn.Sequential):
    """``layers`` residual blocks, then a ReLU."""

    def __init__(self, channels: int, hidden: int, layers: int) -> None:
        super().__init__(*(Residual(channels, hidden) for _ in range(layers)), nn.ReLU())


class VectorQuantizer(nn.Module):
    """A codebook of ``num_embeddings`` vectors, updated by exponential moving averages.

    :meth:`forward` replaces each feature vector (channel axis) by its nearest codebook
    entry in squared Euclidean distance, with the straight-through gradient; nothing is
    updated there. :meth:`ema_update` moves the codebook towards the mean of the features
    assigned to each entry (VQ-VAE, van den Oord et al. 2017, appendix; decay 0.99), which
    only the VQ stage calls.

    Args:
        num_embeddings: Codebook size K.
        embedding_dim: Vector size D.
        decay: EMA decay. Defaults to 0.99.
        epsilon: Laplace smoothing of the cluster sizes. Defaults to 1e-5.
    """

    def __init__(
        self, num_embeddings: int, embedding_dim: int, decay: float = 0.99, epsilon: float = 1e-5
    ) -> None:
        super().__init__()
        # Registration order = the official file's tensor order (EMA sums, sizes, codebook).
        self.register_buffer("ema_weight", torch.randn(num_embeddings, embedding_dim))
        self.register_buffer("ema_cluster_size", torch.zeros(num_embeddings))
        self.embedding = nn.Embedding(num_embeddings, embedding_dim)
        self.embedding.weight.data.normal_()
        self.embedding.weight.requires_grad_(False)  # moved by EMA only
        self.decay = float(decay)
        self.epsilon = float(epsilon)

    @property
    def codebook(self) -> torch.Tensor:
        """(K, D) codebook."""
        return self.embedding.weight

    def distances(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) features -> (B, h, w, K) squared distances to every entry."""
        flat = x.permute(0, 2, 3, 1)
        code = self.codebook
        return (
            flat.pow(2).sum(-1, keepdim=True) + code.pow(2).sum(1) - 2 * flat @ code.t()
        ).clamp_min(0)

    def indices(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) features -> (B, h, w) indices of the nearest entries."""
        return self.distances(x).argmin(-1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, h, w) indices -> (B, D, h, w) codebook vectors."""
        return self.codebook[indices].permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        quantized = self.lookup(self.indices(x))
        return x + (quantized - x).detach()

    @torch.no_grad()
    def init_from(self, flat: torch.Tensor) -> None:
        """Start the codebook at randomly chosen feature vectors (N, D) of a first batch.

        A normal-initialised codebook far from the features leaves most entries unused
        (dead) in a short training; starting on the data is the usual k-means-style
        remedy (not in the paper, whose VQ model trained on ImageNet for long).
        """
        pick = torch.randint(len(flat), (self.codebook.shape[0],), device=flat.device)
        self.codebook.copy_(flat[pick] + 1e-3 * torch.randn_like(self.codebook))
        self.ema_weight.copy_(self.codebook)
        self.ema_cluster_size.fill_(1.0)

    @torch.no_grad()
    def ema_update(self, x: torch.Tensor) -> None:
        """One EMA step of the codebook towards the features ``x`` assigned to each entry
        (the first step of a never-updated codebook starts it on ``x``)."""
        flat = x.detach().permute(0, 2, 3, 1).reshape(-1, x.shape[1])
        if not bool(self.ema_cluster_size.any()):
            self.init_from(flat)
        onehot = F.one_hot(self.indices(x).flatten(), self.codebook.shape[0]).to(flat.dtype)
        self.ema_cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        n = self.ema_cluster_size.sum()
        size = (self.ema_cluster_size + self.epsilon) / (n + len(onehot[0]) * self.epsilon) * n
        self.ema_weight.mul_(self.decay).add_(onehot.t() @ flat, alpha=1 - self.decay)
        self.codebook.copy_(self.ema_weight / size[:, None])


def codebook_anomalies(
    features: torch.Tensor,
    quantized: torch.Tensor,
    quantizer: VectorQuantizer,
    mask: torch.Tensor,
    strength: torch.Tensor,
    skip_nearest: float = 0.05,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Replace quantised vectors inside ``mask`` by other codebook entries (DSR, Sec. 3.3).

    At every position the codebook entries are ranked by distance to the (unquantised)
    feature; the replacement is drawn uniformly from ranks ``[skip_nearest * K, strength *
    K]``, so ``strength`` near 1 allows far entries and near 0 only near ones, while the
    nearest ``skip_nearest`` share is never used (it would be no anomaly). Outside the
    mask the quantised map is returned unchanged.

    Args:
        features: (B, D, h, w) features before quantisation.
        quantized: (B, D, h, w) their quantisation.
        quantizer: The level's codebook.
        mask: (B, 1, H, W) 0/1 anomaly masks at any multiple of (h, w); max-pooled to
            (h, w).
        strength: (B,) anomaly strengths in (0, 1].
        skip_nearest: Share of the nearest entries never drawn. Defaults to 0.05 (paper code).
        generator: torch generator. Defaults to None.

    Returns:
        (B, D, h, w) quantised map with codebook anomalies inside the mask.
    """
    num = quantizer.codebook.shape[0]
    batch, _, h, w = quantized.shape
    order = quantizer.distances(features).argsort(-1)  # (B, h, w, K), nearest first
    low = min(int(num * skip_nearest), num - 1)
    high = (strength * num).long().add(1).clamp(1, num - 1)  # exclusive, per image
    high = torch.maximum(high, torch.full_like(high, low + 1)).to(features.device)
    u = torch.rand(batch, h, w, generator=generator).to(features.device)
    rank = low + (u * (high - low)[:, None, None].float()).long()
    rank = torch.minimum(rank, (high - 1)[:, None, None])
    replacement = quantizer.lookup(order.gather(-1, rank[..., None]).squeeze(-1))
    small = F.adaptive_max_pool2d(mask.float(), (h, w)).to(quantized.dtype)
    return small * replacement + (1 - small) * quantized


class DiscreteLatentModel(nn.Module):
    """The two-level VQ-VAE: encoders, codebooks K_lo (top) and K_hi (bottom), general decoder.

    Args:
        hidden: Channels of the encoders and decoder. Defaults to 128 (paper code).
        residual_layers: Residual blocks per stack. Defaults to 2.
        residual_hidden: Hidden channels of a residual block. Defaults to 64.
        num_embeddings: Entries per codebook. Defaults to 4096.
        embedding_dim: Codebook vector size. Defaults to 128.
    """

    def __init__(
        self,
        hidden: int = 128,
        residual_layers: int = 2,
        residual_hidden: int = 64,
        num_embeddings: int = 4096,
        embedding_dim: int = 128,
    ) -> None:
        super().__init__()
        d = embedding_dim
        # Same registration order as the official DiscreteLatentModel.
        self.encoder_top = nn.Sequential(
            nn.Conv2d(hidden, hidden, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.ReLU(),
            ResidualStack(hidden, residual_hidden, residual_layers),
        )
        self.encoder_bottom = nn.Sequential(
            nn.Conv2d(3, hidden // 2, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden // 2, hidden, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            ResidualStack(hidden, residual_hidden, residual_layers),
        )
        self.pre_vq_bottom = nn.Conv2d(hidden + d, d, 1)
        self.pre_vq_top = nn.Conv2d(hidden, d, 1)
        self.vq_top = VectorQuantizer(num_embeddings, d)
        self.vq_bottom = VectorQuantizer(num_embeddings, d)
        self.decoder = nn.Sequential(
            nn.Conv2d(2 * d, hidden, 3, padding=1),
            ResidualStack(hidden, residual_hidden, residual_layers),
            nn.ConvTranspose2d(hidden, hidden // 2, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(hidden // 2, 3, 4, stride=2, padding=1),
        )
        self.upsample_top = nn.ConvTranspose2d(d, d, 4, stride=2, padding=1)

    def encode(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Images -> bottom encoding, top features ``z_top`` / ``z_bottom`` and quantisations."""
        enc_bottom = self.encoder_bottom(x)
        z_top = self.pre_vq_top(self.encoder_top(enc_bottom))
        q_top = self.vq_top(z_top)
        z_bottom = self.pre_vq_bottom(torch.cat((enc_bottom, self.upsample_top(q_top)), 1))
        q_bottom = self.vq_bottom(z_bottom)
        return dict(
            enc_bottom=enc_bottom, z_top=z_top, q_top=q_top, z_bottom=z_bottom, q_bottom=q_bottom
        )

    def requantize_bottom(self, enc_bottom: torch.Tensor, q_top: torch.Tensor):
        """Bottom features and quantisation conditioned on another top quantisation."""
        z_bottom = self.pre_vq_bottom(torch.cat((enc_bottom, self.upsample_top(q_top)), 1))
        return z_bottom, self.vq_bottom(z_bottom)

    def decode(self, q_top: torch.Tensor, q_bottom: torch.Tensor) -> torch.Tensor:
        """The general appearance decoder on (Q_lo, Q_hi)."""
        return self.decoder(torch.cat((self.upsample_top(q_top), q_bottom), 1))

    def vq_losses(self, x: torch.Tensor, commitment: float = 0.25) -> dict[str, torch.Tensor]:
        """VQ-VAE-2 training terms (reconstruction MSE, commitment of both levels), after one
        EMA update of both codebooks on this batch."""
        out = self.encode(x)
        self.vq_top.ema_update(out["z_top"])
        self.vq_bottom.ema_update(out["z_bottom"])
        recon = self.decode(out["q_top"], out["q_bottom"])
        return dict(
            loss_vq_recon=F.mse_loss(recon, x),
            loss_vq_commit=commitment
            * (
                F.mse_loss(out["z_top"], out["q_top"].detach())
                + F.mse_loss(out["z_bottom"], out["q_bottom"].detach())
            ),
        )
