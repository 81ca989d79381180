"""Multi-class training (``--multi-class`` / ``multi_class = True``): one model trained on
the concatenation of the categories' training sets, tested and reported per category."""

import json

import pytest
import torch

from adtool.apis import run
from adtool.apis.checkpoints import read_checkpoint
from adtool.apis.core import multi_class_config
from adtool.apis.overrides import check_override_keys
from adtool.errors import ConfigError

CONFIG = "dinomaly_tiny_sample"
# A 4-iteration run of the tiny Dinomaly at 56 px (4 x 4 tokens), batches of 4.
SMALL = [
    "train_cfg.max_iters=4",
    "train_dataloader.batch_size=4",
    "train_dataloader.dataset.pipeline.1.size=56",
    "test_dataloader.dataset.pipeline.2.size=56",
    "model.backbone.model_kwargs.embed_dim=32",
    "model.backbone.model_kwargs.num_heads=2",
]


def test_one_model_over_two_categories_reports_each(tiny_data, tmp_path):
    results = run(
        CONFIG,
        data_root=tiny_data,
        category="tiles,disk",
        work_dir=tmp_path,
        cfg_options=SMALL,
        multi_class=True,
    )
    assert [r["category"] for r in results] == ["tiles", "disk"]
    train_dir = tmp_path / "multi_class"
    # One training on both training sets (6 images each), one checkpoint tested twice.
    block = results[0]["multi_class"]
    assert block == results[1]["multi_class"]
    assert block["categories"] == ["tiles", "disk"] and block["n_train"] == 12
    assert block["iters"] == 4 and block["train_s"] > 0
    checkpoints = list(train_dir.glob("*.pth"))
    assert [str(p) for p in checkpoints] == [block["tested_checkpoint"]]
    for r in results:
        out = tmp_path / r["category"]
        saved = json.loads((out / "results.json").read_text())
        assert saved["checkpoint"] == block["tested_checkpoint"]
        assert saved["n_test"] == 3 + 2 * 3  # each category's own test split
        assert (out / "thresholds.json").is_file() and (out / "scores.csv").is_file()
        assert not list(out.glob("*.pth"))  # no per-category training
    summary = json.loads((train_dir / "summary.json").read_text())
    aurocs = [r["image"]["AUROC"] for r in results]
    assert summary["results"]["disk"]["image_AUROC"] == pytest.approx(aurocs[1])
    assert summary["mean"]["image_AUROC"] == pytest.approx(sum(aurocs) / 2)
    # The tested weights are the trained ones (the decoder moved away from its init).
    state = read_checkpoint(block["tested_checkpoint"])["state_dict"]
    assert any(k.startswith("decoder.") for k in state)


def test_multi_class_config_concatenates_training_sets_and_drops_validation():
    from adtool.apis import load_config

    cfg = load_config(CONFIG)
    multi = multi_class_config(cfg, ["tiles", "disk"])
    dataset = multi.train_dataloader.dataset
    assert dataset.type == "ConcatDataset"
    assert [d["category"] for d in dataset.datasets] == ["tiles", "disk"]
    assert all(d["split"] == "train" for d in dataset.datasets)
    assert multi.val_dataloader is None and multi.val_cfg is None
    assert multi.test_dataloader == cfg.test_dataloader  # testing stays per category
    assert cfg.train_dataloader.dataset.type == "SampleDataset"  # the input is not changed


def test_multi_class_is_a_known_top_level_key_and_one_category_runs_alone(monkeypatch, tmp_path):
    import adtool.apis.core as core
    from adtool.apis import load_config

    check_override_keys(load_config("stfpm_r18_mvtec"), {"multi_class": True})
    calls = []
    monkeypatch.setattr(core, "run_category", lambda cfg, cat, out, **kw: calls.append(kw) or {})
    monkeypatch.setattr(core, "run_multi_class", lambda *a, **kw: pytest.fail("multi-class"))
    # One category: a plain single-class run, even with the config's multi_class = True.
    run("dinomaly_vit-s14-reg4_224_mvtec", category="bottle", work_dir=tmp_path)
    assert calls == [{"checkpoint": None, "resume": False, "report": None}]


def test_a_checkpoint_for_several_categories_needs_multi_class(tiny_data, tmp_path):
    ckpt = tmp_path / "model.pth"
    torch.save({"state_dict": {}}, ckpt)
    with pytest.raises(ConfigError, match="--multi-class"):
        run(
            CONFIG,
            data_root=tiny_data,
            category="tiles,disk",
            checkpoint=str(ckpt),
            work_dir=tmp_path,
            multi_class=False,
        )
