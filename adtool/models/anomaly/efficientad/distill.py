"""Make an EfficientAD teacher offline: distil a pretrained CNN's features into a PDN.

As the paper's Sec. 3.1 / appendix and the official distillation script: the PDN learns
to reproduce, per patch, the pretrained network's locally aggregated mid-level features
of the image at twice the PDN's input size (PatchCore's descriptor: each level's 3 x 3
neighbourhood pooled to 1024 values, the deeper level upsampled, both pooled to the PDN's
384 channels), normalised per channel (mean, then std around it, over 10 batches), with
a mean squared error; Adam lr 1e-4, weight decay 1e-5, batches of 16 images grey with
probability 0.1, and, as the official script, the PDN zero-padded while it learns so that
its map covers the image position for position as the source's stride-8 map does (used
unpadded afterwards, the same weights). The paper distils WideResNet-101 on ImageNet for
60 000 steps; here the source is any ``TimmBackbone`` (default: the bundled
EfficientNet-Lite0, stages 2 and 3) and the images any folder, with random square crops
(``crop_scale``) when the folder is small.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from PIL import Image

from adtool.errors import DataError
from adtool.fileio import atomic_path
from adtool.registry import MODELS

from .model import list_images
from .networks import pdn, teacher_file

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
# EfficientNet-Lite0 (TF port) expects [-1, 1].
DEFAULT_SOURCE = dict(
    type="TimmBackbone",
    arch="tf_efficientnet_lite0",
    out_indices=(2, 3),
    frozen=True,
    weights="imagenet",
)
DEFAULT_SOURCE_NORM = (0.5, 0.5)


def patch_descriptor(
    features: list[torch.Tensor], channels: int, level_dim: int = 1024
) -> torch.Tensor:
    """PatchCore's locally aware patch descriptor of several feature levels (the official
    distillation's target): at every position of the first level, each level's 3 x 3
    neighbourhood (all channels, zero-padded; deeper levels bilinearly upsampled to the
    first level's grid) is average-pooled to ``level_dim`` values, the levels are stacked
    and the whole is average-pooled to ``channels``. Returns (B, channels, H, W)."""
    first = features[0].shape[-2:]
    levels = []
    for f in features:
        b, c, h, w = f.shape
        patches = F.unfold(f, 3, padding=1).view(b, c * 9, h, w)
        if (h, w) != tuple(first):
            patches = F.interpolate(patches, size=first, mode="bilinear", align_corners=False)
        vectors = patches.permute(0, 2, 3, 1).reshape(-1, 1, c * 9)
        levels.append(F.adaptive_avg_pool1d(vectors, level_dim))
    x = torch.cat(levels, -1)
    x = F.adaptive_avg_pool1d(x, channels)
    return x.view(features[0].shape[0], *first, channels).permute(0, 3, 1, 2)


def descriptor_convs(
    level_channels: list[int], channels: int, level_dim: int = 1024
) -> list[torch.Tensor]:
    """:func:`patch_descriptor` as one 3 x 3 convolution per level, exactly.

    Every step of the descriptor is linear (unfolding, bilinear upsampling, average
    pooling), and the per-position pooling commutes with the spatial upsampling, so
    ``patch_descriptor(fs) == sum(upsample(conv2d(f, w, padding=1)) for f, w)`` with the
    weights returned here (the pooling applied to the identity). Costs a few
    convolutions where the direct form pools ~10^3 values at every position.
    """
    sizes = [c * 9 for c in level_channels]
    blocks = [F.adaptive_avg_pool1d(torch.eye(n).unsqueeze(1), level_dim) for n in sizes]
    # (sum(sizes), 1, len(levels) * level_dim): each input element's pooled contribution.
    rows = torch.zeros(sum(sizes), 1, len(sizes) * level_dim)
    offset = 0
    for i, (n, block) in enumerate(zip(sizes, blocks)):
        rows[offset : offset + n, :, i * level_dim : (i + 1) * level_dim] = block
        offset += n
    matrix = F.adaptive_avg_pool1d(rows, channels).squeeze(1).T  # (channels, sum(sizes))
    weights = []
    for c, part in zip(level_channels, matrix.split(sizes, dim=1)):
        weights.append(part.reshape(channels, c, 3, 3).contiguous())
    return weights


def descriptor_by_convs(features: list[torch.Tensor], weights: list[torch.Tensor]) -> torch.Tensor:
    """:func:`patch_descriptor` computed with :func:`descriptor_convs`' weights."""
    first = features[0].shape[-2:]
    out = 0
    for f, w in zip(features, weights):
        x = F.conv2d(f, w, padding=1)
        if x.shape[-2:] != first:
            x = F.interpolate(x, size=first, mode="bilinear", align_corners=False)
        out = out + x
    return out


class NaturalImageSampler:
    """Random training views of a folder of natural images, as ``[0, 1]`` (B, 3, S, S).

    Each view is a square crop whose side is ``U(crop_scale, 1)`` of the image's shorter
    side at a random place (``crop_scale=1``: the whole image, squashed to a square, as the
    official distillation's ``Resize``), flipped left-right with probability 0.5 when
    cropping, grey with probability ``grayscale`` (the official ``RandomGrayscale(0.1)``)
    and resized to ``side``. A small folder (up to ``cache`` images) is decoded once.
    """

    def __init__(
        self,
        paths: list[Path],
        side: int,
        crop_scale: float = 1.0,
        grayscale: float = 0.1,
        seed: int = 0,
        cache: int = 512,
    ) -> None:
        if not 0 < crop_scale <= 1:
            raise ValueError(f"crop_scale must be in (0, 1], got {crop_scale}")
        self.paths = list(paths)
        self.side = side
        self.crop_scale = crop_scale
        self.grayscale = grayscale
        self.rng = random.Random(seed)
        self._cache = {} if len(self.paths) <= cache else None
        self._order: list[Path] = []

    def _open(self, path: Path) -> Image.Image:
        if self._cache is not None and path in self._cache:
            return self._cache[path]
        with Image.open(path) as img:
            img = img.convert("RGB")
        if self._cache is not None:
            self._cache[path] = img
        return img

    def _view(self, img: Image.Image) -> torch.Tensor:
        rng = self.rng
        if self.crop_scale < 1:
            short = min(img.size)
            crop = max(8, round(short * rng.uniform(self.crop_scale, 1.0)))
            left = rng.randint(0, img.width - crop)
            top = rng.randint(0, img.height - crop)
            img = img.crop((left, top, left + crop, top + crop))
            if rng.random() < 0.5:
                img = img.transpose(Image.FLIP_LEFT_RIGHT)
        img = img.resize((self.side, self.side), Image.BILINEAR)
        if rng.random() < self.grayscale:
            img = img.convert("L").convert("RGB")
        return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)

    def batch(self, n: int) -> torch.Tensor:
        """``n`` views; the images are drawn as shuffled passes over the folder."""
        views = []
        for _ in range(n):
            if not self._order:
                self._order = list(self.paths)
                self.rng.shuffle(self._order)
            views.append(self._view(self._open(self._order.pop())))
        return torch.stack(views).float() / 255.0


def distill_teacher(
    image_dir: str | os.PathLike | list[str | os.PathLike],
    size: str = "small",
    source: dict | None = None,
    source_name: str = "effnetlite0",
    out: str | os.PathLike | None = None,
    backbone_dir: str | os.PathLike | None = None,
    steps: int = 60000,
    batch_size: int = 16,
    lr: float = 1e-4,
    image_size: int = 256,
    out_channels: int = 384,
    width: float = 1.0,
    crop_scale: float = 1.0,
    source_scale: int = 2,
    source_levels: tuple[int, ...] | None = None,
    stat_batches: int = 10,
    seed: int = 0,
    log_every: int = 100,
    on_step: Callable[[int, float], None] | None = None,
) -> dict:
    """Distil ``source``'s patch features into a PDN and write it atomically.

    As the official distillation, the PDN is trained with zero-padded convolutions, so
    that its output map (``image_size / 4`` a side) covers the whole image as the source's
    stride-8 map of the image at twice the size does, position for position; the written
    weights are then used unpadded (the same parameters) by ``PDNBackbone``.

    Args:
        image_dir: Folder of natural images (searched recursively), or a list of them.
        size: PDN ``'small'`` or ``'medium'``. Defaults to ``'small'``.
        source: ``TimmBackbone`` config of the pretrained network (two feature levels, the
            first at stride 8); None for the bundled EfficientNet-Lite0 (stages 2 and 3).
            Defaults to None.
        source_name: Name in the written file ``pdn_<size>_<source_name>.pth``. Defaults
            to ``'effnetlite0'``.
        out: Output file; None for ``<backbone_dir>/pdn_<size>_<source_name>.pth``.
        backbone_dir: Folder of the default output. Defaults to ``./backbones``.
        steps: Adam steps. Defaults to 60 000 (the paper's).
        batch_size: Images per step. Defaults to 16 (the paper's).
        lr: Adam learning rate (weight decay 1e-5). Defaults to 1e-4 (the paper's).
        image_size: PDN input side (divisible by 4); the source sees twice that. Defaults
            to 256.
        out_channels: PDN output channels. Defaults to 384.
        width: PDN hidden-channel multiplier. Defaults to 1.0.
        crop_scale: Smallest random crop side as a fraction of an image's shorter side;
            1 = the whole image (the official, for ImageNet-sized folders). A small folder
            needs crops (e.g. 0.3) for enough distinct views. Defaults to 1.0.
        source_scale: The source sees the views at this many times the PDN's input side;
            its first level must then have stride ``4 * source_scale`` (the paper's 2:
            stride-8 features of a 512 px image for a 256 px PDN). Defaults to 2.
        source_levels: ``out_indices`` of the source in place of its config's (e.g.
            ``(1, 2)``, strides 4 and 8, with ``source_scale=1``). Defaults to None.
        stat_batches: Batches that estimate the targets' channel mean and std. Defaults
            to 10.
        seed: Seed of the views and the PDN's init. Defaults to 0.
        log_every: Log the loss every this many steps. Defaults to 100.
        on_step: Called with (step, loss) after every step. Defaults to None.

    Returns:
        ``{"path", "losses" (per step), "n_images", "seconds"}``.

    Raises:
        DataError: The folder holds no images.
    """
    from adtool.registry import register_all_modules

    register_all_modules()
    dirs = image_dir if isinstance(image_dir, list | tuple) else [image_dir]
    paths = sorted(p for d in dirs for p in list_images(d))
    if not paths:
        raise DataError(
            f"no images under {image_dir}; pass a folder of natural images (png/jpg, any layout)"
        )
    out = (
        Path(out)
        if out is not None
        else teacher_file(size, source_name, backbone_dir, width, out_channels)
    )
    if image_size % 4:
        raise ValueError(f"image_size must be divisible by 4, got {image_size}")
    torch.manual_seed(seed)
    source_cfg = dict(source or DEFAULT_SOURCE)
    if source_levels is not None:
        source_cfg["out_indices"] = tuple(source_levels)
    extractor = MODELS.build(source_cfg).eval()
    mean, std = DEFAULT_SOURCE_NORM if source is None else (IMAGENET_MEAN, IMAGENET_STD)
    net = pdn(size, out_channels, padding=True, width=width)
    sampler = NaturalImageSampler(paths, source_scale * image_size, crop_scale, seed=seed)
    side = image_size // 4
    level_channels = list(extractor.out_channels)
    convs = descriptor_convs(level_channels, out_channels)

    def views(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch for the source (source_scale x image_size) and the same views for the
        PDN."""
        big = sampler.batch(n)
        if source_scale == 1:
            return big, big
        small = F.interpolate(big, size=image_size, mode="bilinear", antialias=True)
        return big, small

    @torch.no_grad()
    def target(big: torch.Tensor) -> torch.Tensor:
        goal = descriptor_by_convs(extractor((big - mean) / std), convs)
        if goal.shape[-1] != side:
            goal = F.interpolate(goal, size=(side, side), mode="bilinear", align_corners=False)
        return goal

    with torch.no_grad():
        probe = extractor(torch.zeros(1, 3, source_scale * image_size, source_scale * image_size))
    if abs(probe[0].shape[-1] - side) > 1:
        raise ValueError(
            f"the source's first level gives a {probe[0].shape[-1]}-side map for the PDN's "
            f"{side}: pick levels whose first has stride 4 x source_scale ({4 * source_scale})"
        )
    # Channel mean, then std around it, of the targets (the official normalisation).
    stats = torch.cat([target(views(batch_size)[0]) for _ in range(max(1, stat_batches))])
    t_mean = stats.mean((0, 2, 3), keepdim=True)
    t_std = stats.sub(t_mean).pow(2).mean((0, 2, 3), keepdim=True).sqrt().clamp_min(1e-6)
    del stats

    optimizer = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-5)
    losses = []
    start = time.perf_counter()
    for step in range(steps):
        big, images = views(batch_size)
        goal = (target(big) - t_mean) / t_std
        loss = F.mse_loss(net((images - IMAGENET_MEAN) / IMAGENET_STD), goal)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step, losses[-1])
        if log_every and (step + 1) % log_every == 0:
            print_log(f"distill step {step + 1}/{steps}: loss {losses[-1]:.4f}", logger="current")
    seconds = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(
        size=size,
        width=width,
        out_channels=out_channels,
        source=source_name,
        image_dir=[str(d) for d in dirs],
        n_images=len(paths),
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        image_size=image_size,
        crop_scale=crop_scale,
        source_scale=source_scale,
        source_levels=list(source_cfg["out_indices"]),
        seed=seed,
        padding_in_distillation=True,
        stat_batches=stat_batches,
        first_losses=losses[:20],
        final_loss=losses[-1],
    )
    with atomic_path(out) as tmp:
        torch.save({"state_dict": net.state_dict(), "meta": meta}, tmp)
    print_log(
        f"wrote {out} (PDN-{size}, {len(paths)} images, {steps} steps, {seconds:.0f} s, "
        f"loss {losses[0]:.4f} -> {losses[-1]:.4f})",
        logger="current",
        level=logging.WARNING,
    )
    return {"path": out, "losses": losses, "n_images": len(paths), "seconds": seconds}
