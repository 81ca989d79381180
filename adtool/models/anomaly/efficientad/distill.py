"""Make an EfficientAD teacher offline: distil a pretrained CNN's features into a PDN.

As the paper's Sec. 3.1 / appendix: the PDN learns to reproduce, per 33 x 33 patch, the
pretrained network's locally aggregated mid-level features (PatchCore's descriptor: 3x3
average of two stages, the deeper one upsampled, concatenated and pooled along channels
to the PDN's 384), normalised per channel, with a mean squared error, Adam lr 1e-4 and
weight decay 1e-5. The paper distils WideResNet-101 on ImageNet for 60 000 steps of 16
images; here the source is any ``TimmBackbone`` (default: the bundled EfficientNet-Lite0)
and the images any folder.
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
from .networks import pdn, pdn_output_size, teacher_file

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


def patch_descriptor(features: list[torch.Tensor], channels: int, side: int) -> torch.Tensor:
    """PatchCore-style descriptor of two feature levels at ``side`` x ``side``: 3x3 average,
    the deeper level upsampled to the first, concatenated, pooled along channels."""
    first = features[0].shape[-2:]
    levels = [
        F.interpolate(F.avg_pool2d(f, 3, 1, 1), size=first, mode="bilinear", align_corners=False)
        for f in features
    ]
    x = torch.cat(levels, 1)
    b, c, h, w = x.shape
    x = x.permute(0, 2, 3, 1).reshape(-1, 1, c)
    x = F.adaptive_avg_pool1d(x, channels).reshape(b, h, w, channels).permute(0, 3, 1, 2)
    return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)


def _load(paths: list[Path], side: int) -> torch.Tensor:
    """A [0, 1] batch: each image resized to ``side`` px, grey with probability 0.1."""
    images = []
    for path in paths:
        with Image.open(path) as img:
            img = img.convert("RGB").resize((side, side), Image.BILINEAR)
        if random.random() < 0.1:
            img = img.convert("L").convert("RGB")
        images.append(torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1))
    return torch.stack(images).float() / 255.0


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
    seed: int = 0,
    log_every: int = 100,
    on_step: Callable[[int, float], None] | None = None,
) -> dict:
    """Distil ``source``'s patch features into a PDN and write it atomically.

    Args:
        image_dir: Folder of natural images (searched recursively), or a list of them.
        size: PDN ``'small'`` or ``'medium'``. Defaults to ``'small'``.
        source: ``TimmBackbone`` config of the pretrained network (two feature levels);
            None for the bundled EfficientNet-Lite0 (stages 2 and 3). Defaults to None.
        source_name: Name in the written file ``pdn_<size>_<source_name>.pth``. Defaults
            to ``'effnetlite0'``.
        out: Output file; None for ``<backbone_dir>/pdn_<size>_<source_name>.pth``.
        backbone_dir: Folder of the default output. Defaults to ``./backbones``.
        steps: Adam steps. Defaults to 60 000 (the paper's).
        batch_size: Images per step. Defaults to 16 (the paper's).
        lr: Adam learning rate (weight decay 1e-5). Defaults to 1e-4 (the paper's).
        image_size: PDN input side; the source sees twice that, so that its stride-8
            stage matches the PDN's stride 4. Defaults to 256.
        out_channels: PDN output channels. Defaults to 384.
        width: PDN hidden-channel multiplier. Defaults to 1.0.
        seed: Seed of the image order and the PDN's init. Defaults to 0.
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
    random.seed(seed)
    torch.manual_seed(seed)
    extractor = MODELS.build(source or DEFAULT_SOURCE).eval()
    mean, std = DEFAULT_SOURCE_NORM if source is None else (IMAGENET_MEAN, IMAGENET_STD)
    net = pdn(size, out_channels, width=width)
    side = pdn_output_size(image_size)

    def target(images: torch.Tensor) -> torch.Tensor:
        big = F.interpolate(images, scale_factor=2, mode="bilinear", align_corners=False)
        with torch.no_grad():
            return patch_descriptor(extractor((big - mean) / std), out_channels, side)

    # Channel statistics of the targets, from up to 10 batches (the official code
    # normalises the pretrained features the same way).
    order = list(paths)
    random.shuffle(order)
    stats = [
        target(_load(order[i : i + batch_size], image_size))
        for i in range(0, min(len(order), 10 * batch_size), batch_size)
    ]
    stacked = torch.cat(stats)
    t_mean = stacked.mean((0, 2, 3), keepdim=True)
    t_std = stacked.std((0, 2, 3), keepdim=True).clamp_min(1e-6)
    del stats, stacked

    optimizer = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-5)
    losses = []
    start = time.perf_counter()
    cursor = 0
    for step in range(steps):
        if cursor + batch_size > len(order):
            random.shuffle(order)
            cursor = 0
        batch = order[cursor : cursor + batch_size] or order[:batch_size]
        cursor += batch_size
        images = _load(batch, image_size)
        goal = (target(images) - t_mean) / t_std
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
