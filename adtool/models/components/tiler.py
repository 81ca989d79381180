"""Overlapping tiles of high-resolution images, and maps stitched back from them.

A line camera's 2-5 megapixel image resized to a backbone's 256 px loses a defect a few
pixels wide. :class:`Tiler` cuts the full-resolution batch into tiles of the backbone's
size (``tile_size``, every ``stride`` pixels, the last row and column of tiles moved in
so that they end at the border), the model runs on the tiles as on images, and the
tiles' maps are put back where they came from, averaged where tiles overlap.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from adtool.errors import ConfigError


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ConfigError(f"tiling.{name} must be a positive int or (height, width), got {value!r}")
    return pair


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets along one side: every ``stride``, the last one ending at ``length``."""
    if length < tile:
        raise ConfigError(
            f"tiling: the image side {length} px is smaller than the tile ({tile} px); "
            "resize the images to at least the tile size or choose a smaller tile_size"
        )
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


class Tiler:
    """Cut (B, C, H, W) batches into tiles and stitch (B * T, ..., h, w) results back.

    Args:
        tile_size: Tile height and width in pixels (an int for square tiles).
        stride: Step between tiles; ``tile_size`` (no overlap) when None. A stride smaller
            than the tile makes tiles overlap; stitched maps take the mean there.

    Tiles are ordered image by image (image 0's ``T`` tiles first), row by row, so a
    result for ``B * T`` tiles splits back per image with ``view(B, T, ...)``.
    """

    def __init__(self, tile_size: int | Sequence[int], stride: int | Sequence[int] | None = None):
        self.tile_size = _pair(tile_size, "tile_size")
        self.stride = self.tile_size if stride is None else _pair(stride, "stride")
        if any(s > t for s, t in zip(self.stride, self.tile_size)):
            raise ConfigError(
                f"tiling.stride {self.stride} is larger than tile_size {self.tile_size}: "
                "pixels between tiles would never be scored; use stride <= tile_size"
            )

    def __repr__(self) -> str:
        return f"Tiler(tile_size={self.tile_size}, stride={self.stride})"

    def boxes(self, size: Sequence[int]) -> list[tuple[int, int]]:
        """(top, left) of every tile of an image of ``size`` = (H, W), row by row."""
        (th, tw), (sh, sw) = self.tile_size, self.stride
        rows = tile_starts(int(size[0]), th, sh)
        cols = tile_starts(int(size[1]), tw, sw)
        return [(top, left) for top in rows for left in cols]

    def num_tiles(self, size: Sequence[int]) -> int:
        return len(self.boxes(size))

    def tile(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B * T, C, th, tw)."""
        th, tw = self.tile_size
        tiles = [images[..., t : t + th, s : s + tw] for t, s in self.boxes(images.shape[-2:])]
        return torch.stack(tiles, dim=1).flatten(0, 1)

    def untile(self, tiles: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        """(B * T, ..., th, tw) -> (B, ..., H, W): tiles put back, averaged in overlaps."""
        boxes = self.boxes(size)
        th, tw = self.tile_size
        if tuple(tiles.shape[-2:]) != (th, tw):
            raise ValueError(f"tiles are {tuple(tiles.shape[-2:])}, the tiler cuts {(th, tw)}")
        per_image = tiles.reshape(-1, len(boxes), *tiles.shape[1:])
        out = per_image.new_zeros(per_image.shape[0], *tiles.shape[1:-2], *size)
        count = per_image.new_zeros(*size)
        for k, (t, s) in enumerate(boxes):
            out[..., t : t + th, s : s + tw] += per_image[:, k]
            count[t : t + th, s : s + tw] += 1
        return out / count

    def tile_scores(self, scores: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        """(B * T,) tile scores -> (B,) image scores: the worst tile."""
        return scores.reshape(-1, self.num_tiles(size)).amax(1)
