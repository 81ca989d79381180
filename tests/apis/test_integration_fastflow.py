"""Every FastFlow config end to end from its real file: random weights, tiny generated data.

The CaiT and DeiT configs run with a tiny architecture of the same family
(``cait_xxs24_224`` / ``deit_tiny_distilled_patch16_224``, built for 64 px, tokens of
block 2) instead of ``cait_m48_448`` / ``deit_base_distilled_patch16_384``, which are
too large for a unit-test budget; the rest of those configs (20 flow steps, hidden ratio
0.16, no neck, the token backbone) is used as written.
"""

import csv
import json

import pytest
import torch
from integration_helpers import DESIGN_KEYS, FILES
from integration_helpers import tiny as _tiny

from adtool.apis import load_config, run_category
from adtool.apis.config_index import list_configs

FASTFLOW_CONFIGS = [
    "fastflow_wrn50_mvtec",
    "fastflow_r18_mvtec",
    "fastflow_effnetlite0_mvtec",
    "fastflow_effnetlite0_sample",
    "fastflow_deit_mvtec",
    "fastflow_cait_mvtec",
]
TINY_TRANSFORMERS = {
    "deit": "deit_tiny_distilled_patch16_224",
    "cait": "cait_xxs24_224",
}


def tiny(config: str, data_root, size: int = 64, validate: bool = True):
    """The real config with random weights, ``size`` px images, the sample data, 1 epoch.

    With ``validate`` the epoch is validated, so the best checkpoint is kept; without,
    the validation loop is removed (mmengine validates the last epoch whatever the
    ``val_interval``).
    """
    options = {
        "model.backbone.weights": None,
        "model.input_size": size,
        "train_cfg.max_epochs": 1,
    }
    if validate:
        options["train_cfg.val_interval"] = 1
    else:
        options.update({"val_dataloader": None, "val_cfg": None, "val_evaluator": None})
    for family, arch in TINY_TRANSFORMERS.items():
        if f"_{family}_" in config:
            options.update(
                {
                    "model.backbone.arch": arch,
                    "model.backbone.img_size": size,
                    "model.backbone.block_index": 2,
                }
            )
    return _tiny(config, data_root, size, options)


def test_every_fastflow_config_is_covered_here():
    on_disk = {p.stem for p in list_configs() if p.parent.name == "fastflow"}
    assert on_disk == set(FASTFLOW_CONFIGS)


def test_paper_settings_in_the_configs():
    wrn = load_config("fastflow_wrn50_mvtec")
    assert wrn.model.backbone.out_indices == (1, 2, 3) and wrn.model.neck.type == "LayerNormNeck"
    assert wrn.model.head.flow_steps == 8 and wrn.model.head.hidden_ratio == 1.0
    assert wrn.optim_wrapper.optimizer == dict(type="Adam", lr=1e-3, weight_decay=1e-5)
    assert wrn.train_cfg.max_epochs == 500 and wrn.train_dataloader.batch_size == 32
    assert load_config("fastflow_r18_mvtec").model.head.conv3x3_only is True
    for name, size, block in (("fastflow_deit_mvtec", 384, 7), ("fastflow_cait_mvtec", 448, 40)):
        cfg = load_config(name)
        assert cfg.model.neck is None and cfg.model.backbone.block_index == block
        assert cfg.model.head.flow_steps == 20 and cfg.model.head.hidden_ratio == 0.16
        assert cfg.model.input_size == cfg.model.backbone.img_size == size
        for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
            sizes = [s["size"] for s in cfg[loader].dataset.pipeline if s["type"] == "Resize"]
            assert sizes == [size], loader


@pytest.mark.parametrize("config", FASTFLOW_CONFIGS)
def test_config_trains_tests_and_writes_design_outputs(config, tiny_data, tmp_path):
    # WideResNet-50's flows have 41.6M parameters (paper: 41.3M): one checkpoint with
    # Adam's state is ~0.5 GB, so that run skips validation and the best checkpoint.
    validate = config != "fastflow_wrn50_mvtec"
    cfg = tiny(config, tiny_data, validate=validate)
    result = run_category(cfg, "tiles", tmp_path)
    for name in FILES:
        assert (tmp_path / name).is_file(), name
    assert list((tmp_path / "maps").glob("*/*.png"))
    assert not list(tmp_path.glob("**/*.tmp"))
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert DESIGN_KEYS <= set(on_disk)
    assert on_disk["model"] == "FastFlow" and on_disk["config"] == config
    assert on_disk["dataset"] == "sample" and on_disk["category"] == "tiles"
    assert on_disk["n_train"] == 6 and on_disk["n_test"] == 3 + 3 * 2
    assert set(on_disk["per_defect"]) == {"crack", "missing", "spot"}
    assert 0 <= on_disk["image"]["AUROC"] <= 1 and 0 <= on_disk["pixel"]["AUROC"] <= 1
    c = on_disk["confusion"]
    assert c["TP"] + c["FN"] == 6 and c["TN"] + c["FP"] == 3
    assert on_disk["timing"]["train_s"] > 0 and on_disk["timing"]["test_images_per_s"] > 0
    assert result == on_disk
    # One epoch of 6 images in batches of 4; validation kept a best checkpoint.
    train = on_disk["train"]
    assert train["epochs"] == 1 and train["iters"] == 2 and train["tested"] == "last"
    if validate:
        assert 0 <= train["best_image_AUROC"] <= 1
        assert train["best_checkpoint"].endswith("best_image_AUROC_epoch_1.pth")
        assert (tmp_path / "best_image_AUROC_epoch_1.pth").is_file()
    else:
        assert train["best_image_AUROC"] is None and train["best_checkpoint"] is None
        assert not list(tmp_path.glob("best_*.pth"))
    # The checkpoint holds the flows, their fixed permutations and Adam's state.
    ckpt = torch.load(tmp_path / "epoch_1.pth", weights_only=False, map_location="cpu")
    state = ckpt["state_dict"]
    assert any(k.startswith("head.flows.0.module_list.0.w_perm") for k in state)
    assert any(k.startswith("neck.norms.") for k in state) == (cfg.model.neck is not None)
    assert ckpt["optimizer"]["state"]
    # Image scores are maxima of minus a likelihood in (0, 1].
    with open(tmp_path / "scores.csv") as f:
        scores = [float(row["score"]) for row in csv.DictReader(f)]
    assert len(scores) == 9 and all(-1 <= s <= 0 for s in scores)


def test_checkpoint_reproduces_scores_through_test(tiny_data, tmp_path):
    cfg = tiny("fastflow_effnetlite0_sample", tiny_data)
    trained = run_category(cfg, "disk", tmp_path / "train")
    tested = run_category(
        cfg, "disk", tmp_path / "test", checkpoint=str(tmp_path / "train" / "epoch_1.pth")
    )
    assert tested["image"] == trained["image"]
    assert tested["pixel"] == trained["pixel"]
    assert tested["n_train"] is None and tested["timing"]["train_s"] == 0
