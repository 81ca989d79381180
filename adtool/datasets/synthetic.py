"""A procedurally generated anomaly dataset in the MVTec layout (numpy/scipy/PIL only).

Three categories with distinct normal appearance, each with three defect types:

- ``disk``: a machined disk, centred on a plain background with small pose and
  illumination changes. Defects: ``chip`` (a bite out of the rim), ``dent`` (a dark
  dimple), ``scratch`` (a thin bright line).
- ``fabric``: a plain weave with random phase, tilt, thread-to-thread variation and dye
  shade. Defects: ``hole`` (a frayed dark hole), ``stain`` (a soft brown blot), ``thread``
  (a stray light thread).
- ``tiles``: a grid of glazed tiles with grout, random phase, slight tilt and per-tile
  shade. Defects: ``crack`` (a jagged dark line), ``missing`` (a broken-off piece showing
  the substrate), ``spot`` (a blob of foreign colour).

Each defect covers roughly 0.3-6 % of the image (rejection-sampled), visible but not
glaring. These three are the default set (:data:`SAMPLE_CATEGORIES`, what ``make demo``
uses); good features separate them almost perfectly.

Two hard categories (:data:`HARD_SAMPLE_CATEGORIES`, written on request) have small,
low-contrast or texture-like defects, so that methods score apart (image AUROC well
below 1, see docs/benchmarks.md):

- ``twill``: a fine 2/1 twill weave (diagonal ribs) with random phase, slight tilt,
  thread-to-thread variation, shade and soft uneven lighting. Defects: ``scratch`` (a
  thin line where the ribs are rubbed flat into the cloth's mean colour), ``slub`` (a
  short thickened stretch of a warp thread: a smooth band 12 % lighter), ``weave`` (a
  patch woven with a 1.3x looser thread spacing: same colour, another texture frequency).
- ``washer``: a turned steel washer, centred with small pose and lighting changes, on a
  wood-grain background that differs in every image. Defects: ``dent`` (a small dimple
  8 % darker), ``notch`` (a small bite out of the outer or inner rim), ``scratch`` (a
  thin line 8 % brighter).

Hard defects cover about 0.05-3 % of the image. In the hard generators a defect image is
the normal image of the same seed plus the defect (only the sensor noise differs), which
is how the tests check that a mask covers its defect.

Every image comes from its own seed derived from (seed, category, split, defect, index),
so a dataset is byte-identical for a seed and changing one count (or adding a category)
does not change the other images.
"""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from adtool.fileio import atomic_write_bytes


class _Ndimage:
    """``scipy.ndimage``, imported on first use (it costs ~0.3 s; scoring never needs it)."""

    def __getattr__(self, name: str):
        from scipy import ndimage as module

        return getattr(module, name)


ndimage = _Ndimage()

SAMPLE_DEFECTS: dict[str, tuple[str, ...]] = {
    "disk": ("chip", "dent", "scratch"),
    "fabric": ("hole", "stain", "thread"),
    "tiles": ("crack", "missing", "spot"),
    "twill": ("scratch", "slub", "weave"),
    "washer": ("dent", "notch", "scratch"),
}
#: The default (easy) categories: what ``make_sample_dataset`` and ``make demo`` write.
SAMPLE_CATEGORIES = ("disk", "fabric", "tiles")
#: Categories with subtle defects, written on request (``make_sample_data.py --hard``).
HARD_SAMPLE_CATEGORIES = ("twill", "washer")

#: Accepted share of defect pixels in a defect image; a draw outside is redrawn.
MASK_FRACTION_RANGE = (0.003, 0.06)
#: The same for the hard categories, whose defects are small on purpose.
HARD_MASK_FRACTION_RANGE = (0.0005, 0.03)

# Strength of the hard defects (multiplier of the local colour, or darkening depth).
TWILL_SCRATCH_GAIN = 1.05
TWILL_SLUB_GAIN = 1.12
TWILL_WEAVE_SCALE = 1.3
WASHER_SCRATCH_GAIN = 1.08
WASHER_DENT_DEPTH = 0.08

_NAME = re.compile(r"^\d{3}(_mask)?\.png$")

Array = np.ndarray


# -- small drawing helpers ---------------------------------------------------------------


def _grid(size: int) -> tuple[Array, Array]:
    """Pixel-centre coordinates (y, x) in pixels, float32."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    return yy, xx


def _smooth_noise(rng: np.random.Generator, size: int, sigma: float) -> Array:
    """Gaussian-filtered white noise rescaled to zero mean and unit std.

    A wide filter is applied at reduced resolution and upsampled, which looks the same and
    is much faster.
    """
    factor = max(1, int(sigma // 2))
    small = -(-size // factor) + 2
    noise = rng.standard_normal((small, small)).astype(np.float32)
    noise = ndimage.gaussian_filter(noise, sigma / factor, mode="wrap")
    if factor > 1:
        noise = np.asarray(Image.fromarray(noise, mode="F").resize((size, size), Image.BICUBIC))
    noise = noise[:size, :size]
    return (noise - noise.mean()) / (noise.std() + 1e-6)


def _blob_alpha(
    rng: np.random.Generator, size: int, center: tuple[float, float], radius: float, wobble: float
) -> Array:
    """Anti-aliased irregular blob (0..1): a circle whose radius varies with the angle."""
    yy, xx = _grid(size)
    dy, dx = yy - center[0], xx - center[1]
    theta = np.arctan2(dy, dx)
    r = np.full_like(theta, radius)
    for k in (2, 3, 5):
        r += radius * wobble * rng.uniform(0.3, 1.0) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return np.clip(r - np.hypot(dy, dx) + 0.5, 0.0, 1.0)


def _polyline(
    rng: np.random.Generator, start: Array, direction: float, length: float, n: int, bend: float
) -> Array:
    """Points of a random walk of ``n`` segments with turning angles ~ N(0, bend)."""
    points = [np.asarray(start, dtype=np.float32)]
    step = length / n
    for _ in range(n):
        direction += rng.normal(0.0, bend)
        points.append(points[-1] + step * np.array([np.sin(direction), np.cos(direction)]))
    return np.stack(points).astype(np.float32)


def _polyline_distance(size: int, points: Array) -> Array:
    """Distance of every pixel centre to the polyline through ``points`` (y, x)."""
    yy, xx = _grid(size)
    dist = np.full((size, size), np.inf, dtype=np.float32)
    for a, b in zip(points[:-1], points[1:]):
        ab = b - a
        t = ((yy - a[0]) * ab[0] + (xx - a[1]) * ab[1]) / max(float(ab @ ab), 1e-6)
        t = np.clip(t, 0.0, 1.0)
        dist = np.minimum(dist, np.hypot(yy - a[0] - t * ab[0], xx - a[1] - t * ab[1]))
    return dist


def _line(size: int, points: Array, width: float) -> tuple[Array, Array]:
    """(alpha 0..1, mask bool) of a line of ``width`` px; the mask is one pixel wider."""
    dist = _polyline_distance(size, points)
    alpha = np.clip(width / 2 + 0.5 - dist, 0.0, 1.0)
    return alpha, dist <= width / 2 + 1.0


def _blend(img: Array, color: Array | Sequence[float], alpha: Array) -> Array:
    """``img`` (H, W, 3 float) blended towards ``color`` (3, or H, W, 3) by ``alpha``."""
    return img * (1.0 - alpha[..., None]) + np.asarray(color, dtype=np.float32) * alpha[..., None]


def _rotated(size: int, angle: float, offset: tuple[float, float]) -> tuple[Array, Array]:
    """Coordinates (u, v) rotated by ``angle`` about the centre and shifted by ``offset``."""
    yy, xx = _grid(size)
    c, s = np.cos(angle), np.sin(angle)
    y0, x0 = yy - size / 2, xx - size / 2
    return c * x0 + s * y0 + offset[0], -s * x0 + c * y0 + offset[1]


def _finish(img: Array, rng: np.random.Generator, noise: float) -> Array:
    """Add sensor noise and convert to uint8."""
    img = img + rng.normal(0.0, noise, img.shape).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# -- disk ---------------------------------------------------------------------------------


def _disk_geometry(rng: np.random.Generator, size: int) -> dict:
    return dict(
        cy=size / 2 + rng.uniform(-0.03, 0.03) * size,
        cx=size / 2 + rng.uniform(-0.03, 0.03) * size,
        radius=size * 0.33 * rng.uniform(0.97, 1.03),
        marker=rng.uniform(0, 2 * np.pi),
        light=rng.uniform(0, 2 * np.pi),
        gain=rng.uniform(0.92, 1.08),
    )


def _disk_background(size: int, g: dict) -> Array:
    """Plain grey background with a gentle light gradient (H, W, 3 float)."""
    yy, xx = _grid(size)
    ramp = (np.cos(g["light"]) * (xx - g["cx"]) + np.sin(g["light"]) * (yy - g["cy"])) / size
    return (95.0 + 18.0 * ramp)[..., None] * np.array([0.95, 1.0, 1.05], np.float32) * g["gain"]


def _disk_render(size: int, g: dict) -> tuple[Array, Array]:
    """A normal disk image (H, W, 3 float) and the disk's coverage (H, W, 0..1)."""
    yy, xx = _grid(size)
    dy, dx = yy - g["cy"], xx - g["cx"]
    r = np.hypot(dy, dx)
    ramp = (np.cos(g["light"]) * dx + np.sin(g["light"]) * dy) / size
    # Brushed metal with machining rings, a darker hub and a small locating hole.
    rings = 4.0 * np.sin(2 * np.pi * r / max(size / 40, 2.0))
    shade = 165.0 + 50.0 * ramp - 30.0 * (r / g["radius"]) ** 2 + rings
    shade = np.where(r < 0.36 * g["radius"], shade - 35.0, shade)
    my = g["cy"] + 0.7 * g["radius"] * np.sin(g["marker"])
    mx = g["cx"] + 0.7 * g["radius"] * np.cos(g["marker"])
    hole = np.clip(0.07 * g["radius"] - np.hypot(yy - my, xx - mx) + 0.5, 0, 1)
    metal = (shade * (1 - 0.55 * hole))[..., None] * np.array([1.0, 0.98, 0.93], np.float32)
    cover = np.clip(g["radius"] - r + 0.5, 0.0, 1.0)
    return _blend(_disk_background(size, g), metal * g["gain"], cover), cover


def _disk(rng: np.random.Generator, size: int, defect: str | None) -> tuple[Array, Array | None]:
    g = _disk_geometry(rng, size)
    img, cover = _disk_render(size, g)
    mask = None
    if defect is not None:
        img, mask = _disk_defect(rng, size, g, img, cover, defect)
    return _finish(img, rng, 2.5), mask


def _point_on_disk(rng: np.random.Generator, g: dict, rmin: float, rmax: float) -> Array:
    ang = rng.uniform(0, 2 * np.pi)
    rad = g["radius"] * np.sqrt(rng.uniform(rmin**2, rmax**2))
    return np.array([g["cy"] + rad * np.sin(ang), g["cx"] + rad * np.cos(ang)], np.float32)


def _disk_defect(
    rng: np.random.Generator, size: int, g: dict, img: Array, cover: Array, defect: str
) -> tuple[Array, Array]:
    if defect == "chip":
        ang = rng.uniform(0, 2 * np.pi)
        center = (g["cy"] + g["radius"] * np.sin(ang), g["cx"] + g["radius"] * np.cos(ang))
        bite = _blob_alpha(rng, size, center, size * rng.uniform(0.06, 0.09), 0.15) * cover
        # What is left where the piece broke off: background, plus a darker broken edge.
        bg = _disk_background(size, g)
        edge = ndimage.binary_dilation(bite > 0.5, iterations=2) & (cover > 0.5) & (bite < 0.5)
        out = _blend(img, bg, bite)
        out[edge] *= 0.8
        return out, (bite > 0.5) | edge
    if defect == "dent":
        center = _point_on_disk(rng, g, 0.45, 0.85)
        alpha = _blob_alpha(rng, size, tuple(center), size * rng.uniform(0.03, 0.05), 0.2)
        alpha = ndimage.gaussian_filter(alpha, 1.0)
        return img * (1.0 - 0.38 * alpha[..., None]), alpha > 0.3
    # scratch
    start = _point_on_disk(rng, g, 0.2, 0.7)
    length = size * rng.uniform(0.2, 0.32)
    points = _polyline(rng, start, rng.uniform(0, 2 * np.pi), length, 6, 0.08)
    alpha, mask = _line(size, points, max(1.5, size / 110))
    alpha, mask = alpha * (cover > 0.5), mask & (cover > 0.5)
    return _blend(img, np.array([235, 235, 228], np.float32) * g["gain"], 0.8 * alpha), mask


# -- fabric -------------------------------------------------------------------------------


def _fabric(rng: np.random.Generator, size: int, defect: str | None) -> tuple[Array, Array | None]:
    period = max(size / 36, 3.0) * rng.uniform(0.95, 1.05)
    angle = np.deg2rad(rng.uniform(-2.0, 2.0))
    u, v = _rotated(size, angle, (rng.uniform(0, 2 * period), rng.uniform(0, 2 * period)))
    iu, iv = np.floor(u / period), np.floor(v / period)
    fu, fv = u / period - iu, v / period - iv
    warp, weft = np.sin(np.pi * fu) ** 0.6, np.sin(np.pi * fv) ** 0.6
    # Per-thread thickness/brightness variation: each warp column and weft row its own gain.
    n = int(size / period) + 8
    col_gain = 1.0 + 0.08 * rng.standard_normal(2 * n + 1).astype(np.float32)
    row_gain = 1.0 + 0.08 * rng.standard_normal(2 * n + 1).astype(np.float32)
    cg = col_gain[np.clip(iu.astype(int) + n, 0, 2 * n)]
    rg = row_gain[np.clip(iv.astype(int) + n, 0, 2 * n)]
    over = ((iu + iv) % 2) == 0
    pattern = np.where(over, warp * (0.8 + 0.2 * weft) * cg, weft * (0.8 + 0.2 * warp) * rg)
    shading = 1.0 + 0.07 * _smooth_noise(rng, size, size / 8)
    dye = np.array([62, 84, 132], np.float32) * rng.uniform(0.94, 1.06, 3).astype(np.float32)
    tone = (0.55 + 0.6 * pattern) * shading
    img = tone[..., None] * dye
    mask = None
    if defect == "hole":
        center = rng.uniform(0.15, 0.85, 2) * size
        alpha = _blob_alpha(rng, size, tuple(center), size * rng.uniform(0.035, 0.055), 0.3)
        fray = np.clip(alpha + 0.35 * _smooth_noise(rng, size, 1.0) * (alpha > 0), 0, 1)
        img = _blend(img, np.array([22, 22, 28], np.float32), 0.8 * fray)
        mask = fray > 0.5
    elif defect == "stain":
        center = rng.uniform(0.15, 0.85, 2) * size
        alpha = _blob_alpha(rng, size, tuple(center), size * rng.uniform(0.05, 0.08), 0.35)
        alpha = ndimage.gaussian_filter(alpha, size / 90)
        brown = tone[..., None] * np.array([120, 92, 60], np.float32)
        img = _blend(img, brown, 0.55 * alpha)
        mask = alpha > 0.35
    elif defect == "thread":
        start = rng.uniform(0.2, 0.8, 2) * size
        length = size * rng.uniform(0.3, 0.5)
        points = _polyline(rng, start, rng.uniform(0, 2 * np.pi), length, 10, 0.25)
        alpha, mask = _line(size, points, max(1.5, period * 0.6))
        img = _blend(img, np.array([160, 160, 180], np.float32), 0.6 * alpha)
    return _finish(img, rng, 3.0), mask


# -- tiles --------------------------------------------------------------------------------


def _tiles(rng: np.random.Generator, size: int, defect: str | None) -> tuple[Array, Array | None]:
    period = size / 6 * rng.uniform(0.96, 1.04)
    grout = max(period * 0.1, 1.0)
    angle = np.deg2rad(rng.uniform(-1.5, 1.5))
    u, v = _rotated(size, angle, (rng.uniform(0, period), rng.uniform(0, period)))
    iu, iv = np.floor(u / period), np.floor(v / period)
    # Distance to the nearest grout centre line, in pixels, for anti-aliased joints.
    du = np.abs((u - iu * period) - period / 2)
    dv = np.abs((v - iv * period) - period / 2)
    joint = np.clip(np.maximum(du, dv) - (period / 2 - grout) + 0.5, 0.0, 1.0)
    # Each tile its own slightly different glaze shade; small sub-pixel jitter of the shade.
    key = (iu.astype(np.int64) * 7919 + iv.astype(np.int64) * 104729) % 9973
    tile_gain = 1.0 + 0.045 * rng.standard_normal(9973).astype(np.float32)
    glaze_color = np.array([176, 112, 84], np.float32) * rng.uniform(0.95, 1.05)
    glaze = tile_gain[key][..., None] * glaze_color
    glaze = glaze * (1.0 + 0.04 * _smooth_noise(rng, size, 2.0))[..., None]
    grout_color = np.array([198, 196, 186], np.float32)
    tile_mask = joint < 0.5
    img = _blend(glaze, grout_color, joint)
    mask = None
    if defect == "crack":
        start = rng.uniform(0.2, 0.8, 2) * size
        length = size * rng.uniform(0.25, 0.4)
        points = _polyline(rng, start, rng.uniform(0, 2 * np.pi), length, 12, 0.45)
        alpha, mask = _line(size, points, max(1.5, size / 120))
        img = _blend(img, glaze_color * 0.35, 0.85 * alpha)
    elif defect == "missing":
        center = _tile_corner(u, v, period, rng)
        alpha = _blob_alpha(rng, size, center, period * rng.uniform(0.3, 0.45), 0.3)
        alpha = alpha * tile_mask
        substrate = (
            np.array([96, 90, 84], np.float32)
            * (1.0 + 0.08 * _smooth_noise(rng, size, 1.0))[..., None]
        )
        img = _blend(img, substrate, alpha)
        mask = alpha > 0.5
    elif defect == "spot":
        center = rng.uniform(0.15, 0.85, 2) * size
        alpha = _blob_alpha(rng, size, tuple(center), size * rng.uniform(0.035, 0.06), 0.3)
        alpha = ndimage.gaussian_filter(alpha, 0.8)
        img = _blend(img, np.array([92, 118, 120], np.float32), 0.7 * alpha)
        mask = alpha > 0.35
    return _finish(img, rng, 2.5), mask


def _tile_corner(
    u: Array, v: Array, period: float, rng: np.random.Generator
) -> tuple[float, float]:
    """Pixel (y, x) of a random tile corner away from the image border."""
    size = u.shape[0]
    corners = (np.abs(((u + period / 2) % period) - period / 2) < 1.0) & (
        np.abs(((v + period / 2) % period) - period / 2) < 1.0
    )
    margin = int(size * 0.15)
    inner = np.zeros_like(corners)
    inner[margin:-margin, margin:-margin] = True
    ys, xs = np.nonzero(corners & inner)
    if len(ys) == 0:
        return size / 2, size / 2
    i = rng.integers(len(ys))
    return float(ys[i]), float(xs[i])


# -- twill (hard) -------------------------------------------------------------------------


def _twill_tone(u: Array, v: Array, period: float, col_gain: Array, row_gain: Array) -> Array:
    """Brightness (about 0.5-1.1) of a 2/1 twill: warp over two wefts, under one, shifted by
    one thread per row, which draws the diagonal ribs of denim or gabardine."""
    iu, iv = np.floor(u / period), np.floor(v / period)
    fu, fv = u / period - iu, v / period - iv
    warp, weft = np.sin(np.pi * fu) ** 0.7, np.sin(np.pi * fv) ** 0.7
    n = (len(col_gain) - 1) // 2
    cg = col_gain[np.clip(iu.astype(int) + n, 0, 2 * n)]
    rg = row_gain[np.clip(iv.astype(int) + n, 0, 2 * n)]
    over = ((iu - iv) % 3) != 0
    pattern = np.where(over, warp * (0.85 + 0.15 * weft) * cg, weft * (0.85 + 0.15 * warp) * rg)
    return 0.55 + 0.5 * pattern


def _local_mean(img: Array, period: float) -> Array:
    """``img`` (H, W, 3) with its texture blurred away: the local mean colour."""
    return ndimage.gaussian_filter(img, (0.6 * period, 0.6 * period, 0))


def _twill(rng: np.random.Generator, size: int, defect: str | None) -> tuple[Array, Array | None]:
    period = max(size / 32, 3.0) * rng.uniform(0.98, 1.02)
    angle = np.deg2rad(rng.uniform(-1.5, 1.5))
    u, v = _rotated(size, angle, (rng.uniform(0, 3 * period), rng.uniform(0, 3 * period)))
    n = int(1.5 * size / period) + 8
    col_gain = 1.0 + 0.04 * rng.standard_normal(2 * n + 1).astype(np.float32)
    row_gain = 1.0 + 0.04 * rng.standard_normal(2 * n + 1).astype(np.float32)
    tone = _twill_tone(u, v, period, col_gain, row_gain)
    shading = 1.0 + 0.04 * _smooth_noise(rng, size, size / 6)
    dye = np.array([118, 112, 96], np.float32) * rng.uniform(0.97, 1.03, 3).astype(np.float32)
    mask = None
    if defect == "weave":
        # A patch woven with a looser thread spacing: same colour and shading, another
        # texture frequency; only the rhythm of the ribs tells it apart.
        center = rng.uniform(0.15, 0.85, 2) * size
        alpha = _blob_alpha(rng, size, tuple(center), size * rng.uniform(0.07, 0.09), 0.25)
        alpha = ndimage.gaussian_filter(alpha, 1.0)
        loose = _twill_tone(u, v, period * TWILL_WEAVE_SCALE, col_gain, row_gain)
        tone = tone * (1.0 - alpha) + loose * alpha
        mask = alpha > 0.5
    img = (tone * shading)[..., None] * dye
    if defect == "scratch":
        start = rng.uniform(0.2, 0.8, 2) * size
        length = size * rng.uniform(0.18, 0.3)
        points = _polyline(rng, start, rng.uniform(0, 2 * np.pi), length, 6, 0.06)
        alpha, mask = _line(size, points, max(1.5, size / 80))
        # Rubbed flat: the ribs fade into the cloth's local mean colour, barely lighter.
        img = _blend(img, _local_mean(img, period) * TWILL_SCRATCH_GAIN, 0.9 * alpha)
    elif defect == "slub":
        # A short thickened stretch of one warp thread lying over the weave: a smooth band
        # slightly lighter than the cloth, along the warp.
        center = rng.uniform(0.15, 0.85, 2) * size
        direction = angle + np.pi / 2 + rng.normal(0.0, 0.05)
        length = size * rng.uniform(0.06, 0.1)
        start = center - 0.5 * length * np.array([np.sin(direction), np.cos(direction)])
        points = _polyline(rng, start, direction, length, 4, 0.03)
        alpha, mask = _line(size, points, period * rng.uniform(1.2, 1.5))
        alpha = ndimage.gaussian_filter(alpha, 0.7)
        img = _blend(img, _local_mean(img, period) * TWILL_SLUB_GAIN, 0.7 * alpha)
    return _finish(img, rng, 3.0), mask


# -- washer on wood (hard) ----------------------------------------------------------------


def _wood(rng: np.random.Generator, size: int) -> Array:
    """Plank of wood: grain lines along a random near-horizontal direction, bent by smooth
    noise, with a random tone (H, W, 3 float)."""
    u, v = _rotated(size, np.deg2rad(rng.uniform(-8, 8)), (0.0, rng.uniform(0, size)))
    bend = 6.0 * _smooth_noise(rng, size, size / 5) + 1.5 * _smooth_noise(rng, size, size / 20)
    period = size / rng.uniform(14, 20)
    grain = np.sin(2 * np.pi * (v + bend) / period)
    # Fine streaks along the grain (the grain runs along u, near the x axis).
    fine = ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), (0.6, 6))
    fine = fine / (fine.std() + 1e-6)
    tone = 1.0 + 0.10 * grain + 0.04 * fine + 0.05 * _smooth_noise(rng, size, size / 4)
    color = np.array([150, 108, 70], np.float32) * rng.uniform(0.9, 1.1)
    return tone[..., None] * color


def _washer(rng: np.random.Generator, size: int, defect: str | None) -> tuple[Array, Array | None]:
    cy = size / 2 + rng.uniform(-0.04, 0.04) * size
    cx = size / 2 + rng.uniform(-0.04, 0.04) * size
    outer = size * 0.3 * rng.uniform(0.98, 1.02)
    inner = outer * 0.42
    light = rng.uniform(0, 2 * np.pi)
    gain = rng.uniform(0.94, 1.06)
    yy, xx = _grid(size)
    dy, dx = yy - cy, xx - cx
    r = np.hypot(dy, dx)
    ramp = (np.cos(light) * dx + np.sin(light) * dy) / size
    # Turned steel: fine concentric lathe marks, a bevel light on both edges.
    lathe = 3.0 * np.sin(2 * np.pi * r / 2.2) + 2.0 * _smooth_noise(rng, size, 0.7)
    t = (r - inner) / (outer - inner)
    bevel = 14.0 * (np.exp(-(((t - 0.04) / 0.05) ** 2)) - np.exp(-(((t - 0.96) / 0.05) ** 2)))
    shade = (150.0 + 40.0 * ramp + lathe + bevel) * gain
    metal = shade[..., None] * np.array([1.0, 1.0, 1.03], np.float32)
    cover = np.clip(outer - r + 0.5, 0, 1) * np.clip(r - inner + 0.5, 0, 1)
    bg = _wood(rng, size)
    # A soft contact shadow of the washer on the wood.
    shadow = ndimage.gaussian_filter(cover, size / 80)
    bg = bg * (1.0 - 0.25 * np.roll(shadow, (2, 2), axis=(0, 1)))[..., None]
    mask = None
    if defect == "notch":
        # A small bite out of the outer or inner rim showing the wood below.
        ang = rng.uniform(0, 2 * np.pi)
        rim = outer if rng.uniform() < 0.6 else inner
        center = (cy + rim * np.sin(ang), cx + rim * np.cos(ang))
        bite = _blob_alpha(rng, size, center, size * rng.uniform(0.018, 0.026), 0.15)
        mask = (bite * cover) > 0.5
        cover = cover * (1.0 - bite)
    img = _blend(bg, metal, cover)
    on_metal = cover > 0.5
    if defect == "scratch":
        ang = rng.uniform(0, 2 * np.pi)
        rad = rng.uniform(inner + 0.2 * (outer - inner), outer - 0.2 * (outer - inner))
        start = np.array([cy + rad * np.sin(ang), cx + rad * np.cos(ang)], np.float32)
        points = _polyline(
            rng, start, rng.uniform(0, 2 * np.pi), size * rng.uniform(0.1, 0.16), 5, 0.05
        )
        alpha, mask = _line(size, points, max(1.5, size / 100))
        alpha, mask = alpha * on_metal, mask & on_metal
        img = _blend(img, img * WASHER_SCRATCH_GAIN, alpha)
    elif defect == "dent":
        ang = rng.uniform(0, 2 * np.pi)
        rad = rng.uniform(inner + 0.3 * (outer - inner), outer - 0.3 * (outer - inner))
        center = (cy + rad * np.sin(ang), cx + rad * np.cos(ang))
        alpha = _blob_alpha(rng, size, center, size * rng.uniform(0.02, 0.03), 0.2)
        alpha = ndimage.gaussian_filter(alpha, 1.0) * on_metal
        img = img * (1.0 - WASHER_DENT_DEPTH * alpha[..., None])
        mask = alpha > 0.3
    return _finish(img, rng, 2.5), mask


_GENERATORS: dict[str, Callable[..., tuple[Array, Array | None]]] = {
    "disk": _disk,
    "fabric": _fabric,
    "tiles": _tiles,
    "twill": _twill,
    "washer": _washer,
}


# -- dataset writing ----------------------------------------------------------------------


def _seed(*parts: int | str) -> np.random.SeedSequence:
    """A seed sequence from ints and strings (strings hashed with crc32: stable across runs)."""
    return np.random.SeedSequence(
        [p if isinstance(p, int) else zlib.crc32(p.encode()) for p in parts]
    )


def sample_image(
    category: str, defect: str | None, seed: int, size: int = 256, max_tries: int = 50
) -> tuple[Array, Array | None]:
    """One generated image (H, W, 3 uint8) and, for a defect, its mask (H, W uint8 0/255).

    Args:
        category: One of :data:`SAMPLE_CATEGORIES`.
        defect: One of ``SAMPLE_DEFECTS[category]``, or None for a normal image.
        seed: Seed of this image.
        size: Side length in pixels. Defaults to 256.
        max_tries: Redraws allowed to land the defect area in
            :data:`MASK_FRACTION_RANGE`. Defaults to 50.

    Returns:
        The image and the mask (None for a normal image).
    """
    if category not in _GENERATORS:
        raise ValueError(f"unknown sample category {category!r}; one of {tuple(SAMPLE_DEFECTS)}")
    if defect is not None and defect not in SAMPLE_DEFECTS[category]:
        raise ValueError(f"unknown {category} defect {defect!r}; one of {SAMPLE_DEFECTS[category]}")
    rng = np.random.default_rng(seed)
    for _ in range(max_tries):
        img, mask = _GENERATORS[category](rng, size, defect)
        if mask is None:
            return img, None
        lo, hi = (
            HARD_MASK_FRACTION_RANGE if category in HARD_SAMPLE_CATEGORIES else MASK_FRACTION_RANGE
        )
        if lo <= mask.mean() <= hi:
            return img, mask.astype(np.uint8) * 255
    raise RuntimeError(f"could not draw a {category}/{defect} defect of a plausible size")


def _png_bytes(arr: Array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _remove_stale(folder: Path, written: set[Path]) -> None:
    """Delete generated-looking files (``NNN.png``, ``NNN_mask.png``) a larger run left."""
    if folder.is_dir():
        for p in folder.iterdir():
            if p.is_file() and _NAME.match(p.name) and p not in written:
                p.unlink()


def make_sample_dataset(
    out: str | Path = "data/sample",
    seed: int = 0,
    size: int = 256,
    n_train: int = 40,
    n_test_good: int = 15,
    n_test_defect: int = 8,
    categories: Sequence[str] | None = None,
) -> Path:
    """Write the sample dataset in the MVTec layout and return its root.

    ``<out>/<category>/{train/good, test/good, test/<defect>, ground_truth/<defect>}``, file
    names ``000.png``..., masks ``<stem>_mask.png`` with values 0/255. Files are written
    atomically; earlier generated files beyond the new counts are removed.

    Args:
        out: Root folder. Defaults to ``'data/sample'``.
        seed: Seed; the same seed gives byte-identical files. Defaults to 0.
        size: Image side in pixels. Defaults to 256.
        n_train: Normal training images per category. Defaults to 40.
        n_test_good: Normal test images per category. Defaults to 15.
        n_test_defect: Test images per defect type. Defaults to 8.
        categories: Subset of :data:`SAMPLE_CATEGORIES`; None for all. Defaults to None.

    Returns:
        ``Path(out)``.
    """
    if size < 32:
        raise ValueError(f"size must be >= 32 to draw visible defects, got {size}")
    root = Path(out)
    for category in categories or SAMPLE_CATEGORIES:
        if category not in SAMPLE_DEFECTS:
            raise ValueError(
                f"unknown sample category {category!r}; one of {tuple(SAMPLE_DEFECTS)}"
            )
        jobs: list[tuple[str, str | None, int]] = [("train", None, i) for i in range(n_train)]
        jobs += [("test", None, i) for i in range(n_test_good)]
        jobs += [("test", d, i) for d in SAMPLE_DEFECTS[category] for i in range(n_test_defect)]
        written: set[Path] = set()
        for split, defect, i in jobs:
            folder = root / category / split / (defect or "good")
            img_seed = _seed(seed, category, split, defect or "good", i).generate_state(1)[0]
            img, mask = sample_image(category, defect, int(img_seed), size)
            path = folder / f"{i:03d}.png"
            atomic_write_bytes(path, _png_bytes(img))
            written.add(path)
            if mask is not None:
                mask_path = root / category / "ground_truth" / defect / f"{i:03d}_mask.png"
                atomic_write_bytes(mask_path, _png_bytes(mask))
                written.add(mask_path)
        for folder in {p.parent for p in written} | {
            root / category / sub / d
            for sub in ("train", "test", "ground_truth")
            for d in ("good", *SAMPLE_DEFECTS[category])
        }:
            _remove_stale(folder, written)
    return root
