"""STFPM and Reverse Distillation with real EfficientNet-Lite0 weights on the sample data.

Measured here, 1 torch thread, with this file (each test prints its line):
``.venv/bin/pytest tests/quality/test_stfpm_rd_quality.py -m quality -s``. The STFPM
sample config trains at 128 px, batch 4, at most 12 epochs with early stopping on
validation image AUROC; the Reverse Distillation one at 256 px, batch 4, a fixed 20
epochs (configs/*/README.md):

========================  ========  ===========  ===========  ======  =======
config                    category  image AUROC  pixel AUROC  epochs  train s
========================  ========  ===========  ===========  ======  =======
stfpm_effnetlite0_sample  disk      0.950        0.993        12      228.4 *
stfpm_effnetlite0_sample  fabric    1.000        0.996        7       66.3 *
stfpm_effnetlite0_sample  tiles     0.994        0.996        12      153.7 *
reverse_distillation_...  disk      0.922        0.998        20      144.6
reverse_distillation_...  fabric    1.000        0.997        20      136.8
reverse_distillation_...  tiles     0.983        0.992        20      138.5
========================  ========  ===========  ===========  ======  =======

(* STFPM with ``loss_weight=2.0``, on a machine shared with five other jobs: times are
inflated several-fold; with 1.0 the times were 38.8 / 23.3 / 40.2 s.)

STFPM takes ~2 minutes for the three categories, Reverse Distillation ~7: a student or
decoder trained from scratch needs its epochs.

A broken model lands below the floors. With random encoder/teacher weights (the 128 px
settings, ``model.teacher.weights=None`` / ``model.backbone.weights=None``), disk / fabric
/ tiles: STFPM image AUROC 0.51 / 0.44 / 0.66, pixel AUROC 0.83 / 0.59 / 0.77; RD image
AUROC 0.47 / 0.49 / 0.59, pixel AUROC 0.59 / 0.42 / 0.43.
"""

import time

import pytest

from adtool.apis import load_config, run_category
from adtool.datasets import make_sample_dataset

pytestmark = pytest.mark.quality

# (config, category) -> (image AUROC floor, pixel AUROC floor); measured numbers above.
FLOORS = {
    ("stfpm_effnetlite0_sample", "disk"): (0.85, 0.97),
    ("stfpm_effnetlite0_sample", "fabric"): (0.95, 0.97),
    ("stfpm_effnetlite0_sample", "tiles"): (0.90, 0.97),
    ("reverse_distillation_effnetlite0_sample", "disk"): (0.85, 0.97),
    ("reverse_distillation_effnetlite0_sample", "fabric"): (0.95, 0.97),
    ("reverse_distillation_effnetlite0_sample", "tiles"): (0.93, 0.97),
}


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory):
    return make_sample_dataset(tmp_path_factory.mktemp("sample"), seed=0)


@pytest.mark.parametrize(("config", "category"), list(FLOORS))
def test_distillation_effnetlite0_reaches_floor(config, category, sample_root, tmp_path):
    cfg = load_config(
        config,
        {
            "train_dataloader.dataset.data_root": str(sample_root),
            "val_dataloader.dataset.data_root": str(sample_root),
            "test_dataloader.dataset.data_root": str(sample_root),
        },
    )
    start = time.perf_counter()
    result = run_category(cfg, category, tmp_path)
    image_floor, pixel_floor = FLOORS[(config, category)]
    summary = (
        f"{config} {category}: image AUROC {result['image']['AUROC']:.4f}, pixel AUROC "
        f"{result['pixel']['AUROC']:.4f}, epochs {result['train']['epochs']}, train "
        f"{result['timing']['train_s']:.1f} s, total {time.perf_counter() - start:.1f} s"
    )
    print(summary)
    assert result["n_train"] == 40 and result["n_test"] == 15 + 3 * 8
    assert 1 <= result["train"]["epochs"] <= cfg.train_cfg.max_epochs
    assert result["image"]["AUROC"] >= image_floor, summary
    assert result["pixel"]["AUROC"] >= pixel_floor, summary
