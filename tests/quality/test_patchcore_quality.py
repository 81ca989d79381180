"""PatchCore with real ImageNet EfficientNet-Lite0 weights on the generated sample data.

Floors measured here (python tools/train.py configs/patchcore/patchcore_effnetlite0_sample.py
--category all): image AUROC 1.000 on disk, fabric and tiles; pixel AUROC 0.993-0.997.
The floor is the issue's 0.95 for image AUROC and 0.95 for pixel AUROC; a random or
broken backbone lands far below: random weights gave image AUROC 0.51-0.58 on the three
categories (same command with --cfg-options model.backbone.weights=None).
"""

import csv

import pytest

from adtool.apis import load_config, run_category
from adtool.datasets import make_sample_dataset

pytestmark = pytest.mark.quality


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory):
    return make_sample_dataset(tmp_path_factory.mktemp("sample"), seed=0)


def _scores(path):
    with open(path) as f:
        return [(row["img_path"], float(row["score"])) for row in csv.DictReader(f)]


@pytest.mark.parametrize("category", ["disk", "fabric", "tiles"])
def test_patchcore_effnetlite0_reaches_floor(category, sample_root, tmp_path):
    cfg = load_config(
        "patchcore_effnetlite0_sample",
        {
            "train_dataloader.dataset.data_root": str(sample_root),
            "test_dataloader.dataset.data_root": str(sample_root),
        },
    )
    result = run_category(cfg, category, tmp_path / "a")
    assert result["image"]["AUROC"] >= 0.95, result["image"]
    assert result["pixel"]["AUROC"] >= 0.95, result["pixel"]
    assert result["n_train"] == 40 and result["n_test"] == 15 + 3 * 8
    if category == "disk":
        # A second run gives identical per-image scores.
        again = run_category(cfg, category, tmp_path / "b")
        assert _scores(tmp_path / "a" / "scores.csv") == _scores(tmp_path / "b" / "scores.csv")
        assert again["image"] == result["image"]
