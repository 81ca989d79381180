"""The parts only SuperSimpleNet uses: its feature upscaling, its anomaly generator, its
segmentation-detection head and its truncated L1 loss (Rolih et al., arXiv 2408.03143)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from adtool.errors import ConfigError
from adtool.models.components.perlin import perlin_mask
from adtool.registry import MODELS


def xavier_init(module: nn.Module) -> None:
    """The official initialisation: Xavier-normal weights, batch-norm weights at 1."""
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        nn.init.xavier_normal_(module.weight)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.constant_(module.weight, 1.0)


@MODELS.register_module()
class UpscaleConcatNeck(nn.Module):
    """Upscale every level to ``scale`` x the finest one, concatenate, average 3 x 3.

    SuperSimpleNet's feature extractor: WideResNet-50 layers 2 and 3 (strides 8 and 16)
    are resized bilinearly (corners aligned, as the official code) to twice the layer-2
    grid (stride 4), concatenated over channels, then each position is replaced by the
    mean of its ``kernel_size`` neighbourhood (stride 1, zero padding counted).

    Args:
        scale: Output grid relative to the first level's. Defaults to 2 (paper).
        kernel_size: Side of the local average. Defaults to 3 (paper).
    """

    def __init__(self, scale: int = 2, kernel_size: int = 3) -> None:
        super().__init__()
        if scale < 1 or kernel_size < 1 or kernel_size % 2 == 0:
            raise ConfigError(
                f"UpscaleConcatNeck needs scale >= 1 and an odd kernel_size, got {scale}, "
                f"{kernel_size}"
            )
        self.scale = int(scale)
        self.kernel_size = int(kernel_size)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """[(B, C_i, H_i, W_i)] -> (B, sum C_i, scale * H_0, scale * W_0)."""
        h, w = features[0].shape[-2:]
        size = (h * self.scale, w * self.scale)
        levels = [
            F.interpolate(f, size=size, mode="bilinear", align_corners=True) for f in features
        ]
        k = self.kernel_size
        return F.avg_pool2d(torch.cat(levels, 1), k, stride=1, padding=k // 2)


class FeatureAnomalyGenerator(nn.Module):
    """Gaussian noise added to features inside Perlin-noise masks drawn at feature size.

    The batch is duplicated (each image once as it is, once more with its own mask), so a
    step sees 2B feature maps. Every map draws a binary Perlin mask (lattice ``2**k`` cells
    per side, ``k`` in ``[min_scale, max_scale)``, noise above ``threshold``); with
    probability ``empty_prob`` the mask is emptied, so about half the maps stay as they
    are. Inside the mask ``N(0, noise_std^2)`` is added to every channel. The targets are
    updated: a position is anomalous if it was (a labelled defect) or got noise, an image
    if any of its positions is.

    Args:
        noise_std: Std of the added noise. Defaults to 0.015 (paper).
        threshold: Perlin noise level above which a position is masked. Defaults to 0.2
            (official MVTec AD setting; 0.6 for VisA and the supervised runs).
        min_scale: Smallest log2 lattice resolution. Defaults to 0.
        max_scale: Exclusive upper bound of the log2 resolution. Defaults to 6.
        empty_prob: Chance that a map's mask is emptied. Defaults to 0.5 (official).
        overlap: Also add noise inside labelled defects (``False``: only outside them,
            the official supervised setting). Defaults to True.
    """

    def __init__(
        self,
        noise_std: float = 0.015,
        threshold: float = 0.2,
        min_scale: int = 0,
        max_scale: int = 6,
        empty_prob: float = 0.5,
        overlap: bool = True,
    ) -> None:
        super().__init__()
        if noise_std < 0 or not 0.0 <= empty_prob <= 1.0:
            raise ConfigError(
                f"FeatureAnomalyGenerator needs noise_std >= 0 and empty_prob in [0, 1], got "
                f"{noise_std}, {empty_prob}"
            )
        self.noise_std = float(noise_std)
        self.threshold = float(threshold)
        self.min_scale = int(min_scale)
        self.max_scale = int(max_scale)
        self.empty_prob = float(empty_prob)
        self.overlap = bool(overlap)

    def noise_masks(self, batch: int, size: Sequence[int], device=None) -> torch.Tensor:
        """(batch, 1, h, w) 0/1 masks: where noise goes."""
        masks = perlin_mask(
            batch,
            size,
            threshold=self.threshold,
            min_scale=self.min_scale,
            max_scale=self.max_scale,
        )
        keep = (torch.rand(batch) >= self.empty_prob).float()
        return (masks * keep[:, None, None])[:, None].to(device)

    def forward(
        self, features: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, C, h, w) features, (B, 1, h, w) masks, (B,) labels -> the same for 2B maps."""
        features = torch.cat((features, features))
        masks = torch.cat((masks, masks))
        labels = torch.cat((labels, labels))
        noise_mask = self.noise_masks(features.shape[0], features.shape[-2:], features.device)
        if not self.overlap:
            noise_mask = noise_mask * (1 - masks)
        noise = torch.randn_like(features) * self.noise_std
        perturbed = features + noise * noise_mask
        masks = ((masks + noise_mask) > 0).to(features.dtype)
        labels = ((labels + masks.flatten(1).amax(1)) > 0).to(features.dtype)
        return perturbed, masks, labels


@MODELS.register_module()
class SegDetHead(nn.Module):
    """SuperSimpleNet's segmentation-detection module.

    Segmentation: 1x1 convolution to ``hidden_channels``, batch norm, LeakyReLU(0.2), 1x1
    convolution to one logit per position. Classification: the features concatenated
    with that map go through a ``cls_kernel`` convolution to ``cls_channels``, batch
    norm and ReLU; the global max and mean of its output and of the map feed a linear
    layer to one image logit. With ``stop_grad`` the classification branch does not
    propagate into the map (the official unsupervised setting).

    Args:
        in_channels: Feature channels.
        hidden_channels: Width of the segmentation head. Defaults to 1024 (paper).
        cls_channels: Width of the classification convolution. Defaults to 128 (paper).
        cls_kernel: Side of the classification convolution. Defaults to 5 (paper).
        stop_grad: Detach the map where the classification branch reads it. Defaults
            to True (official unsupervised setting; False in the supervised one).
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int = 1024,
        cls_channels: int = 128,
        cls_kernel: int = 5,
        stop_grad: bool = True,
    ) -> None:
        super().__init__()
        self.seg = nn.Sequential(
            nn.Conv2d(in_channels, hidden_channels, 1),
            nn.BatchNorm2d(hidden_channels),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(hidden_channels, 1, 1, bias=False),
        )
        self.cls_conv = nn.Sequential(
            nn.Conv2d(in_channels + 1, cls_channels, cls_kernel, padding="same"),
            nn.BatchNorm2d(cls_channels),
            nn.ReLU(inplace=True),
        )
        self.cls_fc = nn.Linear(2 * cls_channels + 2, 1)
        self.stop_grad = bool(stop_grad)
        self.apply(xavier_init)

    def init_weights(self) -> None:
        """Initialised in ``__init__``; mmengine's re-initialisation must not undo it."""

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, h, w) -> (B, 1, h, w) map logits and (B,) image logits."""
        seg = self.seg(features)
        seg_in = seg.detach() if self.stop_grad else seg
        conv = self.cls_conv(torch.cat((features, seg_in), 1))
        pooled = torch.cat(
            (conv.amax((2, 3)), conv.mean((2, 3)), seg_in.amax((2, 3)), seg_in.mean((2, 3))), 1
        )
        return seg, self.cls_fc(pooled).squeeze(1)


def truncated_l1_loss(
    logits: torch.Tensor,
    masks: torch.Tensor,
    margin: float = 0.5,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """SuperSimpleNet's truncated L1 on map logits: normal positions pay ``max(0, s + m)``,
    anomalous ones ``max(0, m - s)``; each group is averaged and the two means added (a
    group without positions adds 0).

    Args:
        logits: (B, 1, h, w) map logits ``s``.
        masks: 0/1 targets of the same shape.
        margin: Truncation ``m``. Defaults to 0.5 (official).
        valid: Optional 0/1 weights of the same shape; positions at 0 are left out.
            Defaults to None (all positions count).
    """
    valid = torch.ones_like(logits) if valid is None else valid.to(logits.dtype)
    anomalous = (masks > 0).to(logits.dtype) * valid
    normal = (masks <= 0).to(logits.dtype) * valid
    normal_loss = (F.relu(logits + margin) * normal).sum() / normal.sum().clamp_min(1)
    anomalous_loss = (F.relu(margin - logits) * anomalous).sum() / anomalous.sum().clamp_min(1)
    return normal_loss + anomalous_loss
