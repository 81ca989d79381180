"""STFPM and Reverse Distillation configs end to end: random weights, tiny generated data."""

import json
import math
from pathlib import Path

import pytest
import torch
from integration_helpers import DESIGN_KEYS
from integration_helpers import tiny as _tiny

from adtool.apis import run_category
from adtool.apis.config_index import list_configs

REPORT_FILES = ["config.py", "last_checkpoint", "results.json", "results.txt", "scores.csv"]
PLOTS = ["histogram.png", "roc.png", "pr.png"]
# config -> (model type, key of the pretrained backbone's weights, epochs run here)
CONFIGS = {
    "stfpm_r18_mvtec": ("STFPM", "model.teacher.weights", 2),
    "stfpm_effnetlite0_mvtec": ("STFPM", "model.teacher.weights", 2),
    "stfpm_effnetlite0_sample": ("STFPM", "model.teacher.weights", 2),
    # WideResNet-50's bottleneck and decoder hold 84M parameters: one epoch is enough.
    "reverse_distillation_wrn50_mvtec": ("ReverseDistillation", "model.backbone.weights", 1),
    "reverse_distillation_effnetlite0_mvtec": ("ReverseDistillation", "model.backbone.weights", 2),
    "reverse_distillation_effnetlite0_sample": (
        "ReverseDistillation",
        "model.backbone.weights",
        2,
    ),
}
BATCH = 4


def tiny(config: str, weights_key: str, data_root, epochs: int, size: int = 64):
    """The real config with random weights, ``size`` px images, the sample data, few epochs."""
    return _tiny(config, data_root, size, {weights_key: None, "train_cfg.max_epochs": epochs})


def test_every_distillation_config_is_covered_here():
    on_disk = {p.stem for p in list_configs() if p.parent.name in ("stfpm", "reverse_distillation")}
    assert on_disk == set(CONFIGS)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_config_trains_tests_and_writes_design_outputs(config, tiny_data, tmp_path):
    model_type, weights_key, epochs = CONFIGS[config]
    cfg = tiny(config, weights_key, tiny_data, epochs)
    result = run_category(cfg, "tiles", tmp_path)
    for name in REPORT_FILES + PLOTS + [f"epoch_{epochs}.pth"]:
        assert (tmp_path / name).is_file(), name
    assert list((tmp_path / "maps").glob("*/*.png"))
    assert not list(tmp_path.glob("**/*.tmp"))
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert result == on_disk
    assert DESIGN_KEYS <= set(on_disk)
    assert on_disk["model"] == model_type and on_disk["config"] == config
    assert on_disk["dataset"] == "sample" and on_disk["category"] == "tiles"
    assert on_disk["n_train"] == 6 and on_disk["n_test"] == 3 + 3 * 2
    assert set(on_disk["per_defect"]) == {"crack", "missing", "spot"}
    assert 0 <= on_disk["image"]["AUROC"] <= 1 and 0 <= on_disk["pixel"]["AUROC"] <= 1
    c = on_disk["confusion"]
    assert c["TP"] + c["FN"] == 6 and c["TN"] + c["FP"] == 3
    assert on_disk["timing"]["train_s"] > 0 and on_disk["timing"]["test_images_per_s"] > 0

    # The trained-model block: every epoch ran and validated, the best epoch was saved.
    train = on_disk["train"]
    assert train["epochs"] == epochs
    assert train["iters"] == epochs * math.ceil(6 / BATCH)
    assert train["tested"] == "last"
    assert 0 <= train["best_image_AUROC"] <= 1
    best = Path(train["best_checkpoint"])
    assert best.is_file() and best.parent == tmp_path and best.name.startswith("best_image_AUROC")

    # The checkpoint holds optimiser state (trained by gradient) and the frozen teacher.
    ckpt = torch.load(tmp_path / f"epoch_{epochs}.pth", weights_only=False, map_location="cpu")
    assert "optimizer" in ckpt
    prefix = "teacher." if model_type == "STFPM" else "backbone."
    assert any(k.startswith(prefix) for k in ckpt["state_dict"])
    # WideResNet-50's checkpoints weigh ~1 GB each; pytest keeps old tmp dirs around.
    for path in tmp_path.glob("*.pth"):
        path.unlink()


def test_checkpoint_reproduces_scores_through_test(tiny_data, tmp_path):
    config = "reverse_distillation_effnetlite0_sample"
    _, weights_key, _ = CONFIGS[config]
    cfg = tiny(config, weights_key, tiny_data, epochs=1)
    trained = run_category(cfg, "disk", tmp_path / "train")
    tested = run_category(
        cfg, "disk", tmp_path / "test", checkpoint=str(tmp_path / "train" / "epoch_1.pth")
    )
    assert tested["image"] == trained["image"]
    assert tested["pixel"] == trained["pixel"]
    assert tested["n_train"] is None and "train" not in tested
