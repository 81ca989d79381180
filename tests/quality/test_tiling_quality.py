"""Tiling finds a small defect in a 1024 px image that the resize to 256 px loses.

The images are generated here: a fine weave (two gratings of period 6 and 7 px) on slow
shading and grain, 1024 x 1024. A defect is a 32 x 32 px patch (0.1 % of the image) where
the weave turns diagonal with period 3 px at the same mean and amplitude. Resized to
256 px for the backbone, both weaves are finer than the new pixel grid and average to the
same grey, so the defect is gone; cut into 16 tiles of 256 px, each tile is seen at full
resolution. PatchCore with the bundled EfficientNet-Lite0 weights (the sample config,
coreset 1 % for speed), 4 training images, 6 good and 6 defective test images.

Measured here, 1 thread, machine shared with seven other jobs (load ~10, times inflated
several-fold), with ``pytest tests/quality/test_tiling_quality.py -m quality -s``:

=====================  ===========  ===========
run                    image AUROC  pixel AUROC
=====================  ===========  ===========
resize to 256 px       0.472        0.830
16 tiles of 256 px     1.000        1.000
=====================  ===========  ===========
"""

import numpy as np
import pytest
from floors import run_floor
from PIL import Image

pytestmark = pytest.mark.quality

SIZE, TILE, DEFECT = 1024, 256, 32


def _weave(rng: np.random.Generator, defect: tuple[int, int] | None = None) -> np.ndarray:
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, 4)
    fine = np.sin(2 * np.pi * x / 6.0 + phase[0]) + np.sin(2 * np.pi * y / 7.0 + phase[1])
    if defect is not None:
        top, left = defect
        box = np.s_[top : top + DEFECT, left : left + DEFECT]
        diagonal = (x[box] + y[box]) / np.sqrt(2)
        fine[box] = 2 * np.sin(2 * np.pi * diagonal / 3.0 + phase[2])
    slow = 0.08 * np.sin(2 * np.pi * x / 300 + phase[2]) * np.sin(2 * np.pi * y / 260 + phase[3])
    image = 0.5 + 0.1 * fine + slow + rng.normal(0, 0.02, (SIZE, SIZE))
    return np.clip(np.repeat(image[..., None], 3, -1) * 255, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def weave_root(tmp_path_factory):
    """MVTec layout, category ``weave``: 4 train, 6 good and 6 ``pattern`` test images."""
    root = tmp_path_factory.mktemp("hires")
    rng = np.random.default_rng(0)
    folders = {k: root / "weave" / k for k in ("train/good", "test/good", "test/pattern")}
    folders["masks"] = root / "weave" / "ground_truth" / "pattern"
    for folder in folders.values():
        folder.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(_weave(rng)).save(folders["train/good"] / f"{i:03d}.png")
    for i in range(6):
        Image.fromarray(_weave(rng)).save(folders["test/good"] / f"{i:03d}.png")
    for i in range(6):
        top, left = (int(v) for v in rng.integers(64, SIZE - 64 - DEFECT, 2))
        Image.fromarray(_weave(rng, (top, left))).save(folders["test/pattern"] / f"{i:03d}.png")
        mask = np.zeros((SIZE, SIZE), np.uint8)
        mask[top : top + DEFECT, left : left + DEFECT] = 255
        Image.fromarray(mask).save(folders["masks"] / f"{i:03d}_mask.png")
    return root


def _options(size: int, tiling: dict | None) -> dict:
    options = {
        "train_dataloader.dataset.pipeline.1.size": size,
        "test_dataloader.dataset.pipeline.2.size": size,
        "train_dataloader.batch_size": 4,
        "test_dataloader.batch_size": 4,
        "model.head.coreset_ratio": 0.01,
    }
    if tiling:
        options["model.data_preprocessor.tiling"] = tiling
    return options


def test_tiled_patchcore_finds_the_defect_the_resize_misses(weave_root, tmp_path):
    config = "patchcore_effnetlite0_sample"
    resized, summary_resized, _ = run_floor(
        config, "weave", weave_root, tmp_path / "resized", _options(TILE, None)
    )
    tiled, summary_tiled, _ = run_floor(
        config, "weave", weave_root, tmp_path / "tiled", _options(SIZE, dict(tile_size=TILE))
    )
    assert resized["n_test"] == tiled["n_test"] == 12
    # Full-resolution maps, stitched from the tiles.
    assert tiled["image"]["AUROC"] >= 0.95 and tiled["pixel"]["AUROC"] >= 0.95, summary_tiled
    assert resized["image"]["AUROC"] <= 0.75, summary_resized
