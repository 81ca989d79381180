"""EfficientAD's networks: the patch description network (PDN) and the autoencoder.

Layer shapes follow the paper's Tables 6-8 (Batzner et al., arXiv 2303.14535) and the
official code: no padding in the PDN (``padding=False``), so a 256 px input gives a
56 x 56 map whose positions each see a 33 x 33 patch.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from adtool.errors import WeightsNotFoundError
from adtool.models.backbones.weights import default_backbone_dir
from adtool.registry import MODELS

PDN_SIZES = ("small", "medium")


def pdn(
    size: str = "small", out_channels: int = 384, padding: bool = False, width: float = 1.0
) -> nn.Sequential:
    """A patch description network (paper Table 6 small, Table 7 medium).

    Args:
        size: ``'small'`` or ``'medium'``. Defaults to ``'small'``.
        out_channels: Output channels (384 for a teacher, 768 for a student). Defaults to 384.
        padding: Zero-pad the convolutions (the official code's option; off for MVTec AD).
            Defaults to False.
        width: Multiplier of the hidden channels (1 = the paper's; the CPU-sized sample
            configs use less). Defaults to 1.0.
    """
    p = 1 if padding else 0
    c128, c256, c512 = (max(8, round(c * width)) for c in (128, 256, 512))
    if size == "small":
        layers = [
            nn.Conv2d(3, c128, 4, padding=3 * p),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(2, 2, padding=p),
            nn.Conv2d(c128, c256, 4, padding=3 * p),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(2, 2, padding=p),
            nn.Conv2d(c256, c256, 3, padding=p),
            nn.ReLU(inplace=True),
            nn.Conv2d(c256, out_channels, 4),
        ]
    elif size == "medium":
        layers = [
            nn.Conv2d(3, c256, 4, padding=3 * p),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(2, 2, padding=p),
            nn.Conv2d(c256, c512, 4, padding=3 * p),
            nn.ReLU(inplace=True),
            nn.AvgPool2d(2, 2, padding=p),
            nn.Conv2d(c512, c512, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c512, c512, 3, padding=p),
            nn.ReLU(inplace=True),
            nn.Conv2d(c512, out_channels, 4),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 1),
        ]
    else:
        raise ValueError(f"PDN size must be one of {PDN_SIZES}, got {size!r}")
    return nn.Sequential(*layers)


def pdn_output_size(input_size: int, padding: bool = False) -> int:
    """Side of a PDN's output map for a square input (the same for small and medium)."""
    if padding:
        return input_size // 4
    return (((input_size - 3) // 2 - 3) // 2 - 2) - 3


def teacher_file(
    size: str,
    source: str,
    backbone_dir: str | os.PathLike | None = None,
    width: float = 1.0,
    out_channels: int = 384,
) -> Path:
    """``<backbone_dir>/pdn_<size>_<source>.pth`` (``pdn_<size>-w<width>-c<channels>_<source>``
    for a narrower PDN): where a distilled teacher is looked for and written."""
    tag = size if width == 1 else f"{size}-w{width:g}"
    if out_channels != 384:
        tag += f"-c{out_channels}"
    return default_backbone_dir(backbone_dir) / f"pdn_{tag}_{source}.pth"


@MODELS.register_module()
class PDNBackbone(BaseModule):
    """EfficientAD's frozen teacher: a PDN distilled from a pretrained network.

    Args:
        size: ``'small'`` (EfficientAD-S) or ``'medium'`` (EfficientAD-M). Defaults to
            ``'small'``.
        out_channels: Output channels. Defaults to 384 (the paper's).
        weights: The source the teacher was distilled from (a name: the file is
            ``<backbone_dir>/pdn_<size>_<name>.pth``, e.g. ``'effnetlite0'`` as written by
            ``tools/distill_teacher.py``), a path to a ``.pth`` file, or None for random
            init (tests only). Defaults to ``'effnetlite0'``.
        backbone_dir: Folder holding the teacher files. Defaults to
            ``$ADTOOL_BACKBONE_DIR`` or ``./backbones``.
        padding: Zero-padded convolutions. Defaults to False.
        width: Hidden-channel multiplier (1 = the paper's PDN). Defaults to 1.0.
        init_cfg: mmengine init config. Defaults to None.

    Raises:
        WeightsNotFoundError: The teacher file is missing (the message says how to make
            or place it) or holds another network.
    """

    def __init__(
        self,
        size: str = "small",
        out_channels: int = 384,
        weights: str | os.PathLike | None = "effnetlite0",
        backbone_dir: str | os.PathLike | None = None,
        padding: bool = False,
        width: float = 1.0,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        if size not in PDN_SIZES:
            raise WeightsNotFoundError(f"PDNBackbone size must be one of {PDN_SIZES}, not {size!r}")
        self.size = size
        self.padding = padding
        self.width = width
        self.net = pdn(size, out_channels, padding, width)
        self.weights_path = None
        if weights is not None:
            path = self._resolve(size, weights, backbone_dir, width, out_channels)
            self._load(path)
            self.weights_path = str(path)
        self.requires_grad_(False)
        self.eval()

    @property
    def out_channels(self) -> list[int]:
        """Channels of the one returned level."""
        return [self.net[-1].out_channels]

    @property
    def reductions(self) -> list[int]:
        return [4]

    def feature_shapes(self, input_size: int) -> list[tuple[int, int, int]]:
        side = pdn_output_size(int(input_size), self.padding)
        return [(self.out_channels[0], side, side)]

    @staticmethod
    def _resolve(size: str, weights, backbone_dir, width: float, out_channels: int) -> Path:
        text = str(weights)
        fix = f"--size {size}" + ("" if width == 1 else f" --width {width:g}")
        fix += "" if out_channels == 384 else f" --out-channels {out_channels}"
        if text.endswith((".pth", ".pt")) or os.sep in text or "/" in text:
            path = Path(text).expanduser()
            if path.is_file():
                return path
            raise WeightsNotFoundError(
                f"EfficientAD teacher file {path} not found; pass an existing .pth or run "
                f"`python tools/distill_teacher.py IMAGE_DIR {fix}`"
            )
        path = teacher_file(size, text, backbone_dir, width, out_channels)
        if path.is_file():
            return path
        raise WeightsNotFoundError(
            f"EfficientAD teacher {path} not found; place a distilled PDN ({size}) there, or "
            f"create it offline with `python tools/distill_teacher.py IMAGE_DIR {fix}` "
            "(distils the bundled EfficientNet-Lite0 on any folder of natural images)"
        )

    def _load(self, path: Path) -> None:
        from adtool.engine.compat import load_checkpoint_file

        loaded = load_checkpoint_file(path, map_location="cpu")
        state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else loaded
        state = {k.removeprefix("net."): v for k, v in state.items()}
        mine = self.net.state_dict()
        if set(state) != set(mine) or any(state[k].shape != mine[k].shape for k in mine):
            raise WeightsNotFoundError(
                f"teacher file {path} does not hold a PDN-{self.size} with "
                f"{self.out_channels[0]} output channels (width {self.width:g}); distil one with "
                f"`python tools/distill_teacher.py IMAGE_DIR --size {self.size}`"
            )
        self.net.load_state_dict(state)

    def init_weights(self) -> None:
        """Weights come from the teacher file in ``__init__``; keep them."""

    def train(self, mode: bool = True) -> PDNBackbone:
        return super().train(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class AutoEncoder(nn.Module):
    """EfficientAD's autoencoder (paper Table 8): 6 strided convs to a 64-d code, 8 upsampling
    blocks back to the PDN's output map.

    The official code is written for 256 px; at another input size the last encoder
    kernel (8 at 256 px) and the upsampling sizes scale with the input (as anomalib's
    port does), so the code stays 1 x 1.

    Args:
        input_size: Square input side in pixels. Defaults to 256.
        out_channels: Output channels (the teacher's). Defaults to 384.
        padding: Whether the PDNs are padded (changes the output side). Defaults to False.
        width: Channel multiplier (1 = the paper's). Defaults to 1.0.
    """

    def __init__(
        self,
        input_size: int = 256,
        out_channels: int = 384,
        padding: bool = False,
        width: float = 1.0,
    ):
        super().__init__()
        if input_size < 64 or input_size % 32:
            raise ValueError(
                f"EfficientAD needs an input side >= 64 divisible by 32, got {input_size}"
            )
        c32, c64 = (max(8, round(c * width)) for c in (32, 64))
        self.encoder = nn.Sequential(
            nn.Conv2d(3, c32, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c32, c32, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c32, c64, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c64, c64, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c64, c64, 4, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c64, c64, input_size // 32),
        )
        s = input_size
        self.sizes = [
            max(1, math.ceil(s / 64) - 1),
            math.ceil(s / 32),
            math.ceil(s / 16) - 1,
            math.ceil(s / 8),
            math.ceil(s / 4) - 1,
            math.ceil(s / 2) - 1,
            pdn_output_size(s, padding),
        ]
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(c64, c64, 4, stride=1, padding=2),
                nn.ReLU(inplace=True),
                nn.Dropout(0.2),
            )
            for _ in range(6)
        )
        self.head = nn.Sequential(
            nn.Conv2d(c64, c64, 3, stride=1, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c64, out_channels, 3, stride=1, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.encoder(x)
        for size, block in zip(self.sizes[:-1], self.blocks):
            x = block(F.interpolate(x, size=size, mode="bilinear"))
        x = F.interpolate(x, size=self.sizes[-1], mode="bilinear")
        return self.head(x)
