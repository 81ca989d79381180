"""STFPM and Reverse Distillation with real EfficientNet-Lite0 weights on the sample data.

Measured here, 1 torch thread, with this file (each test prints its line):
``.venv/bin/pytest tests/quality/test_stfpm_rd_quality.py -m quality -s``. The sample
configs train at 128 px, batch 4, at most 12 epochs with early stopping on validation
image AUROC (configs/*/README.md):

========================  ========  ===========  ===========  ======  =======
config                    category  image AUROC  pixel AUROC  epochs  train s
========================  ========  ===========  ===========  ======  =======
stfpm_effnetlite0_sample  disk      0.917        0.993        12      56.1
stfpm_effnetlite0_sample  fabric    1.000        0.996        7       22.8
stfpm_effnetlite0_sample  tiles     0.972        0.996        12      38.8
reverse_distillation_...  disk      0.706        0.996        12      22.9
reverse_distillation_...  fabric    1.000        0.994        9       17.4
reverse_distillation_...  tiles     0.769        0.989        12      23.2
========================  ========  ===========  ===========  ======  =======

Whole file: 6 tests in ~220 s wall (STFPM ~130 s, RD ~80 s), more than the ~60 s per
model aimed at: a student or decoder trained from scratch needs ~10 epochs of 40 images.

A broken model lands far below the floors. With random encoder/teacher weights (same
configs, ``model.teacher.weights=None`` / ``model.backbone.weights=None``): STFPM image
AUROC 0.51 / 0.44 / 0.66 and pixel AUROC 0.83 / 0.59 / 0.77; RD image AUROC
RANDOM_RD. RD's image AUROC on disk and tiles is weak after 12 short epochs (the
decoder does not yet restore the disk rim; it swings by +-0.1 from epoch to epoch), so
its pixel floor is the one that separates working from broken there.
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
    ("reverse_distillation_effnetlite0_sample", "disk"): (0.62, 0.97),
    ("reverse_distillation_effnetlite0_sample", "fabric"): (0.95, 0.97),
    ("reverse_distillation_effnetlite0_sample", "tiles"): (0.68, 0.95),
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
