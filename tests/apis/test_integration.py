"""Every config end to end from its real file: random weights, tiny generated data."""

import json

import pytest
import torch
from integration_helpers import DESIGN_KEYS, FILES
from integration_helpers import tiny as _tiny

from adtool.apis import run, run_category
from adtool.apis.config_index import list_configs, resolve_config

PATCHCORE_CONFIGS = [
    "patchcore_wrn50_mvtec",
    "patchcore_r18_mvtec",
    "patchcore_effnetlite0_mvtec",
    "patchcore_effnetlite0_sample",
]


def tiny(config: str, data_root, size: int = 64):
    """The real config with random weights, images resized to ``size`` and the sample data."""
    return _tiny(config, data_root, size, {"model.backbone.weights": None})


def test_every_patchcore_config_is_covered_here():
    on_disk = {p.stem for p in list_configs() if p.parent.name == "patchcore"}
    assert on_disk == set(PATCHCORE_CONFIGS)


@pytest.mark.parametrize("config", PATCHCORE_CONFIGS)
def test_config_trains_tests_and_writes_design_outputs(config, tiny_data, tmp_path):
    cfg = tiny(config, tiny_data)
    result = run_category(cfg, "tiles", tmp_path)
    for name in FILES:
        assert (tmp_path / name).is_file(), name
    assert list((tmp_path / "maps").glob("*/*.png"))
    assert not list(tmp_path.glob("**/*.tmp"))
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert DESIGN_KEYS <= set(on_disk)
    assert on_disk["model"] == "PatchCore" and on_disk["config"] == config
    assert on_disk["dataset"] == "sample" and on_disk["category"] == "tiles"
    assert on_disk["n_train"] == 6 and on_disk["n_test"] == 3 + 3 * 2
    assert set(on_disk["per_defect"]) == {"crack", "missing", "spot"}
    assert all(v["n"] == 2 for v in on_disk["per_defect"].values())
    assert 0 <= on_disk["image"]["AUROC"] <= 1 and 0 <= on_disk["pixel"]["AUPRO"] <= 1
    assert set(on_disk["thresholds"]) == {
        "f1_percentile",
        "f1_uniform",
        "youden_j",
        "percentile_95",
    }
    c = on_disk["confusion"]
    assert c["TP"] + c["FN"] == 6 and c["TN"] + c["FP"] == 3
    assert on_disk["timing"]["train_s"] > 0 and on_disk["timing"]["test_images_per_s"] > 0
    assert result == on_disk
    # The checkpoint carries the memory bank: 10% of 6 images' patches.
    ckpt = torch.load(tmp_path / "epoch_1.pth", weights_only=False)
    bank = ckpt["state_dict"]["head.memory_bank"]
    assert bank.shape[0] > 0 and "optimizer" not in ckpt


def test_checkpoint_reproduces_scores_through_test(tiny_data, tmp_path):
    config = "patchcore_effnetlite0_sample"
    cfg = tiny(config, tiny_data)
    trained = run_category(cfg, "disk", tmp_path / "train")
    tested = run_category(
        cfg, "disk", tmp_path / "test", checkpoint=str(tmp_path / "train" / "epoch_1.pth")
    )
    assert tested["image"] == trained["image"]
    assert tested["thresholds"] == trained["thresholds"]
    assert tested["n_train"] is None and tested["timing"]["train_s"] == 0


def test_run_all_categories_and_cfg_options(tiny_data, tmp_path):
    results = run(
        "patchcore_effnetlite0_sample",
        data_root=tiny_data,
        category="all",
        work_dir=tmp_path,
        cfg_options=[
            "model.backbone.weights=None",
            "model.head.coreset_ratio=0.05",
            "train_dataloader.dataset.pipeline.1.size=64",
            "test_dataloader.dataset.pipeline.2.size=64",
        ],
    )
    assert [r["category"] for r in results] == ["disk", "tiles"]
    for r in results:
        saved = json.loads((tmp_path / r["category"] / "results.json").read_text())
        assert saved["n_test"] == 9
    cfg_text = (tmp_path / "disk" / "config.py").read_text()
    assert "coreset_ratio=0.05" in cfg_text and "'disk'" in cfg_text


def test_short_names_resolve_to_paper_configs():
    assert resolve_config("patchcore").stem == "patchcore_wrn50_mvtec"
    assert resolve_config("patchcore_r18_mvtec").name == "patchcore_r18_mvtec.py"
