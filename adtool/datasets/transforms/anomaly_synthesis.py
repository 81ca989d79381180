"""Synthetic-anomaly generators used by training pipelines (DRAEM, DSR, SuperSimpleNet).

The math lives in :mod:`adtool.models.components.perlin`; these transforms draw from it per
sample inside a pipeline. Randomness comes from numpy's global generator (which mmengine
seeds per worker), as in the geometric transforms, turned into a torch generator's seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from adtool.errors import ConfigError
from adtool.registry import TRANSFORMS

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@TRANSFORMS.register_module()
class PerlinAnomalyMask:
    """Add a binary Perlin-noise mask ``results[key]`` (H x W float32, 0/1) of the image size.

    With probability ``1 - prob`` the mask is all zero (DRAEM leaves half its training
    images normal). The mask only says where a synthetic anomaly goes; the method's
    augmenter fills it (texture blend, codebook anomaly, feature noise).

    Args:
        prob: Probability that the mask is non-empty. Defaults to 1.0.
        fraction: Share of the image each mask covers; None thresholds the noise at
            ``threshold`` instead (DRAEM). Defaults to None.
        threshold: Noise threshold when ``fraction`` is None. Defaults to 0.5 (DRAEM).
        min_scale: Smallest log2 lattice resolution. Defaults to 0 (DRAEM).
        max_scale: Exclusive upper bound of the log2 resolution. Defaults to 6 (DRAEM).
        max_rotation: Rotate the mask by an angle uniform in ``[-max_rotation,
            max_rotation]`` degrees (DRAEM's code rotates its noise by up to 90). Defaults
            to 0.0 (no rotation).
        key: Results key that receives the mask. Defaults to ``'anomaly_mask'``.
    """

    #: Draws random numbers: the engine's caches stop at this transform.
    random = True

    def __init__(
        self,
        prob: float = 1.0,
        fraction: float | None = None,
        threshold: float = 0.5,
        min_scale: int = 0,
        max_scale: int = 6,
        max_rotation: float = 0.0,
        key: str = "anomaly_mask",
    ) -> None:
        if not 0.0 <= prob <= 1.0:
            raise ConfigError(f"PerlinAnomalyMask prob must be in [0, 1], got {prob}")
        if fraction is not None and not 0.0 < fraction <= 1.0:
            raise ConfigError(f"PerlinAnomalyMask fraction must be in (0, 1], got {fraction}")
        if not 0 <= min_scale < max_scale:
            raise ConfigError(
                f"PerlinAnomalyMask needs 0 <= min_scale < max_scale, got {min_scale}, {max_scale}"
            )
        self.prob = float(prob)
        self.fraction = fraction
        self.threshold = float(threshold)
        self.min_scale = int(min_scale)
        self.max_scale = int(max_scale)
        self.max_rotation = float(max_rotation)
        self.key = key

    def __call__(self, results: dict) -> dict:
        # Imported here: the models package imports the engine, which must not be needed
        # to build a data pipeline.
        from adtool.models.components.perlin import perlin_mask

        height, width = results["img"].shape[:2]
        if np.random.rand() >= self.prob:
            results[self.key] = np.zeros((height, width), np.float32)
            return results
        generator = torch.Generator().manual_seed(int(np.random.randint(0, 2**31 - 1)))
        mask = perlin_mask(
            1,
            (height, width),
            fraction=self.fraction,
            threshold=self.threshold,
            min_scale=self.min_scale,
            max_scale=self.max_scale,
            generator=generator,
        )
        if self.max_rotation > 0:
            angle = float(np.random.uniform(-self.max_rotation, self.max_rotation))
            # Nearest keeps the mask binary; the corners rotated in are empty.
            mask = TF.rotate(mask[None], angle, InterpolationMode.NEAREST, fill=0.0)[0]
        results[self.key] = mask[0].numpy()
        return results

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(prob={self.prob}, fraction={self.fraction}, "
            f"threshold={self.threshold}, scales=[{self.min_scale}, {self.max_scale}), "
            f"max_rotation={self.max_rotation}, key={self.key!r})"
        )


def _multiply_add_brightness(t: torch.Tensor) -> torch.Tensor:
    """imgaug's MultiplyAndAddToBrightness: x[0.8, 1.2] then +[-30, 30] grey levels."""
    t = TF.adjust_brightness(t, np.random.uniform(0.8, 1.2)).short()
    return (t + int(np.random.uniform(-30, 30))).clamp(0, 255).to(torch.uint8)


def _texture_augmenters() -> list:
    """DRAEM's pool of texture augmentations (its code draws 3 of these per anomaly), each
    a function of a (3, H, W) uint8 tensor drawing its own strength from numpy."""
    u = np.random.uniform
    return [
        lambda t: TF.adjust_gamma(t, u(0.5, 2.0)),
        _multiply_add_brightness,
        lambda t: TF.adjust_sharpness(t, u(0.0, 2.0)),
        lambda t: TF.adjust_saturation(TF.adjust_hue(t, u(-50, 50) / 360), u(0.5, 1.5)),
        lambda t: TF.solarize(t, int(u(32, 128))),
        lambda t: TF.posterize(t, int(np.random.randint(4, 9))),
        TF.invert,
        TF.autocontrast,
        TF.equalize,
        lambda t: TF.rotate(t, float(u(-45, 45))),
    ]


@TRANSFORMS.register_module()
class TextureAnomalyBlend:
    """Fill a Perlin mask with a texture: DRAEM's synthetic anomaly (Zavrtanik et al. 2021).

    Reads the mask ``results[mask_key]`` (from :class:`PerlinAnomalyMask`) and writes the
    anomalous image ``I_a = (1 - M) * I + (1 - beta) * M * I + beta * M * A`` into
    ``results['img']`` (paper Eq. 1; ``A`` a texture image after ``num_augments`` random
    augmentations, ``beta`` uniform in ``beta_range``), the untouched image into
    ``results[clean_key]`` (the reconstruction target), the mask into ``gt_mask`` and
    ``gt_label = 1`` when the mask is non-empty (an empty mask leaves the image normal).

    Textures: every image file under ``texture_dir`` (recursive, so DTD's
    ``dtd/images/<class>/`` layout or any folder of images). Without any, a procedural
    fallback named in :attr:`source_info`: each anomaly is a colour Perlin noise (one noise
    per channel, lattice 2**k cells, k in [0, 6)).

    Args:
        texture_dir: Folder of anomaly-source images. Defaults to ``'data/dtd'``.
        beta_range: (low, high) opacity of the texture in the mask. Defaults to
            (0.1, 1.0) (paper).
        num_augments: Augmentations drawn from DRAEM's pool of ten for each texture.
            Defaults to 3 (DRAEM's code).
        mask_key: Results key of the mask. Defaults to ``'anomaly_mask'``.
        clean_key: Results key that receives the anomaly-free image. Defaults to
            ``'img_clean'``.
    """

    #: Draws random numbers: the engine's caches stop at this transform.
    random = True

    def __init__(
        self,
        texture_dir: str | None = "data/dtd",
        beta_range: tuple[float, float] = (0.1, 1.0),
        num_augments: int = 3,
        mask_key: str = "anomaly_mask",
        clean_key: str = "img_clean",
    ) -> None:
        low, high = (float(b) for b in beta_range)
        if not 0.0 <= low <= high <= 1.0:
            raise ConfigError(
                f"TextureAnomalyBlend beta_range must satisfy 0 <= low <= high <= 1, got "
                f"{tuple(beta_range)}"
            )
        if not 0 <= num_augments <= 10:
            raise ConfigError(
                f"TextureAnomalyBlend num_augments must be in [0, 10], got {num_augments}"
            )
        self.texture_dir = texture_dir
        self.beta_range = (low, high)
        self.num_augments = int(num_augments)
        self.mask_key = mask_key
        self.clean_key = clean_key
        root = Path(texture_dir) if texture_dir else None
        self.textures = (
            sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
            if root is not None and root.is_dir()
            else []
        )

    @property
    def source_info(self) -> str:
        """Where the anomalies' textures come from, in one line (log and results.json)."""
        if self.textures:
            return f"{len(self.textures)} texture images from {self.texture_dir}"
        return (
            f"fallback: procedural colour Perlin noise (no images under {self.texture_dir}); "
            "put DTD (dtd/images) or any images there or set texture_dir"
        )

    def _texture(self, height: int, width: int) -> torch.Tensor:
        """A (3, H, W) uint8 anomaly source, augmented."""
        if self.textures:
            path = self.textures[np.random.randint(len(self.textures))]
            with Image.open(path) as img:
                img = img.convert("RGB").resize((width, height), Image.BILINEAR)
            texture = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)
        else:
            from adtool.models.components.perlin import perlin_noise

            generator = torch.Generator().manual_seed(int(np.random.randint(0, 2**31 - 1)))
            res = 2 ** torch.randint(0, 6, (3, 2), generator=generator)
            noise = perlin_noise(3, (height, width), res, generator=generator)
            texture = ((noise.clamp(-1, 1) + 1) * 127.5).to(torch.uint8)
        pool = _texture_augmenters()
        for i in np.random.permutation(len(pool))[: self.num_augments]:
            texture = pool[i](texture)
        return texture

    def __call__(self, results: dict) -> dict:
        img = results["img"]
        mask = np.asarray(results[self.mask_key], np.float32)
        results[self.clean_key] = img
        results["gt_mask"] = (mask > 0).astype(np.uint8)
        results["gt_label"] = int(mask.any())
        if not mask.any():
            return results
        height, width = img.shape[:2]
        texture = self._texture(height, width).permute(1, 2, 0).numpy().astype(np.float32)
        beta = float(np.random.uniform(*self.beta_range))
        m = mask[..., None]
        image = img.astype(np.float32)
        blended = (1 - m) * image + (1 - beta) * m * image + beta * m * texture
        results["img"] = np.clip(np.rint(blended), 0, 255).astype(np.uint8)
        return results

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(texture_dir={self.texture_dir!r}, "
            f"beta_range={self.beta_range}, num_augments={self.num_augments})"
        )
