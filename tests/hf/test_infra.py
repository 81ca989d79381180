"""HF task infrastructure: wrapper building (errors, local folders), run-path helpers,
the classification/SR datasets and transforms, and the shared report writers."""

from __future__ import annotations

import builtins
import json

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

pytest.importorskip("transformers")

from adtool.apis.checkpoints import update_checkpoint  # noqa: E402
from adtool.apis.config_index import task_of  # noqa: E402
from adtool.apis.core import jsonable, run_category  # noqa: E402
from adtool.apis.thresholds import META_KEY as THRESHOLDS_META_KEY  # noqa: E402
from adtool.apis.thresholds import inference_thresholds  # noqa: E402
from adtool.datasets.hf import (  # noqa: E402
    ImageFolderCls,
    LoadSRPair,
    PackSRInputs,
    RandomSRCrop,
    RandomSRFlip,
    SRPairs,
    bicubic_downscale,
    make_classification_dataset,
    make_sr_dataset,
)
from adtool.errors import ConfigError, DataError  # noqa: E402
from adtool.evaluation.task_report import format_table  # noqa: E402
from adtool.models.hf import ViTClassifier, skip_pretrained_weights  # noqa: E402
from adtool.models.hf.base import build_hf_model  # noqa: E402

VIT_TINY = dict(
    image_size=32,
    patch_size=8,
    hidden_size=32,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=64,
)


def _save_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


# ------------------------------------------------------------------ building wrappers


def test_missing_transformers_gives_one_line_install_hint(monkeypatch):
    real_import = builtins.__import__

    def no_transformers(name, *args, **kwargs):
        if name == "transformers" or name.startswith("transformers."):
            raise ModuleNotFoundError("No module named 'transformers'", name="transformers")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_transformers)
    with pytest.raises(ConfigError) as err:
        ViTClassifier(num_classes=2, hf_config=VIT_TINY)
    message = str(err.value)
    assert 'pip install -e ".[hf]"' in message and "\n" not in message


def test_broken_transformers_install_is_not_reported_as_missing(monkeypatch):
    real_import = builtins.__import__

    def broken(name, *args, **kwargs):
        if name == "transformers":
            raise ModuleNotFoundError("No module named 'tokenizers'", name="tokenizers")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", broken)
    with pytest.raises(ModuleNotFoundError, match="tokenizers"):
        ViTClassifier(num_classes=2, hf_config=VIT_TINY)


def test_missing_pretrained_folder_names_folder_and_fetch_command(tmp_path):
    folder = tmp_path / "backbones" / "hf" / "vit-base-patch16-224"
    with pytest.raises(ConfigError) as err:
        ViTClassifier(num_classes=2, pretrained=str(folder))
    message = str(err.value)
    assert str(folder) in message and "not found" in message
    assert "google/vit-base-patch16-224" in message and "save_pretrained" in message
    assert "\n" not in message


def test_pretrained_folder_without_weights_is_refused(tmp_path):
    folder = tmp_path / "vit"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="has no weights"):
        ViTClassifier(num_classes=2, pretrained=str(folder))
    (folder / "config.json").unlink()
    with pytest.raises(ConfigError, match="has no config.json"):
        ViTClassifier(num_classes=2, pretrained=str(folder))


def test_neither_pretrained_nor_hf_config_is_a_config_error():
    with pytest.raises(ConfigError, match="hf_config"):
        build_hf_model("ViTForImageClassification", "ViTConfig", "google/x")


def test_pretrained_folder_loads_backbone_and_replaces_head(tmp_path):
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    source = ViTForImageClassification(ViTConfig(**VIT_TINY, num_labels=3))
    source.save_pretrained(tmp_path / "vit")
    model = ViTClassifier(num_classes=5, pretrained=str(tmp_path / "vit"))
    key = "vit.embeddings.patch_embeddings.projection.weight"
    assert torch.equal(model.model.state_dict()[key], source.state_dict()[key])
    assert model.model.classifier.out_features == 5

    # Inside skip_pretrained_weights only config.json is read (a checkpoint brings weights).
    for f in (tmp_path / "vit").glob("*.safetensors"):
        f.unlink()
    with skip_pretrained_weights():
        rebuilt = ViTClassifier(num_classes=5, pretrained=str(tmp_path / "vit"))
    assert rebuilt.model.config.hidden_size == VIT_TINY["hidden_size"]
    with pytest.raises(ConfigError, match="has no weights"):
        ViTClassifier(num_classes=5, pretrained=str(tmp_path / "vit"))


def test_backbone_dir_env_resolves_backbones_prefix(tmp_path, monkeypatch):
    from transformers import ViTConfig, ViTForImageClassification

    ViTForImageClassification(ViTConfig(**VIT_TINY, num_labels=2)).save_pretrained(
        tmp_path / "store" / "hf" / "vit-mini"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ADTOOL_BACKBONE_DIR", str(tmp_path / "store"))
    model = ViTClassifier(num_classes=2, pretrained="backbones/hf/vit-mini")
    assert model.model.config.hidden_size == VIT_TINY["hidden_size"]


def test_unknown_config_key_of_wrapper_is_named():
    from adtool.registry import MODELS

    with pytest.raises(ConfigError, match="num_class"):
        MODELS.build(dict(type="ViTClassifier", num_class=2, hf_config=VIT_TINY))


# ------------------------------------------------------------------ run-path helpers


def test_unknown_task_is_refused(tmp_path):
    cfg = Config(dict(task="regression"))
    with pytest.raises(ConfigError, match="task 'regression'"):
        task_of(cfg)
    with pytest.raises(ConfigError):
        run_category(cfg, None, tmp_path)


def test_inference_thresholds_from_metric_reports():
    assert inference_thresholds({"inference_thresholds": {"score": 0.3}}) == {"score": 0.3}
    assert inference_thresholds({"thresholds": {"best_f1": {"value": 0.42, "f1": 0.9}}}) == {
        "score": 0.42
    }
    assert inference_thresholds({"thresholds": {"best_f1": {"score": 0.1}}}) == {"score": 0.1}
    assert inference_thresholds({"thresholds": {"confidence_sweep": []}}) == {}


def test_jsonable_makes_strict_json():
    value = {
        "a": np.float32(1.5),
        "b": float("inf"),
        "c": torch.tensor([1, 2]),
        "d": (np.int64(3), float("nan")),
    }
    out = jsonable(value)
    assert out == {"a": 1.5, "b": None, "c": [1, 2], "d": [3, None]}
    json.dumps(out, allow_nan=False)


def test_store_checkpoint_meta_keeps_weights(tmp_path):
    path = tmp_path / "epoch_1.pth"
    torch.save({"state_dict": {"w": torch.ones(2)}, "meta": {"epoch": 1}}, path)
    update_checkpoint(path, meta={THRESHOLDS_META_KEY: {"score": 0.37}, "adtool_task": "detection"})
    state = torch.load(path, weights_only=False)
    assert state["meta"][THRESHOLDS_META_KEY] == {"score": 0.37}
    assert state["meta"]["adtool_task"] == "detection" and state["meta"]["epoch"] == 1
    assert torch.equal(state["state_dict"]["w"], torch.ones(2))


# ------------------------------------------------------------------ datasets


def test_image_folder_labels_follow_sorted_train_folders(tmp_path):
    root = make_classification_dataset(tmp_path, n_train_per_class=2, n_val_per_class=1)
    train = ImageFolderCls(data_root=str(root), split="train")
    val = ImageFolderCls(data_root=str(root), split="val")
    assert train.metainfo["classes"] == ("checker", "disk", "dots", "stripes")
    assert len(train) == 8 and len(val) == 4
    for i in range(len(train)):
        info = train.get_data_info(i)
        assert train.metainfo["classes"][info["gt_label"]] == info["class_name"]
        assert f"/{info['class_name']}/" in info["img_path"]


def test_image_folder_missing_root_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no class folders"):
        ImageFolderCls(data_root=str(tmp_path / "nothing"))


def test_generated_data_is_deterministic(tmp_path):
    a = make_classification_dataset(tmp_path / "a", n_train_per_class=1, n_val_per_class=1)
    b = make_classification_dataset(tmp_path / "b", n_train_per_class=1, n_val_per_class=1)
    for path in (a / "train").glob("*/*.png"):
        other = b / path.relative_to(a)
        assert path.read_bytes() == other.read_bytes()


def test_sr_pairs_match_lr_files_or_make_them(tmp_path):
    with_lr = make_sr_dataset(tmp_path / "lr", n_train=2, n_val=1, size=32)
    without = make_sr_dataset(tmp_path / "nolr", n_train=2, n_val=1, size=32, write_lr=False)
    a = SRPairs(data_root=str(with_lr), split="train", pipeline=[LoadSRPair(), PackSRInputs()])
    b = SRPairs(data_root=str(without), split="train", pipeline=[LoadSRPair(), PackSRInputs()])
    assert a.get_data_info(0)["lr_path"].endswith("LR_x2/00000.png")
    assert b.get_data_info(0)["lr_path"] is None
    sa, sb = a[0], b[0]
    # LR made on the fly is the same bicubic downscale the generator wrote to disk.
    assert torch.equal(sa["inputs"], sb["inputs"]) and sa["inputs"].shape == (3, 16, 16)
    assert torch.equal(sa["data_samples"].gt_img, sb["data_samples"].gt_img)
    assert sa["data_samples"].gt_img.shape == (3, 32, 32)
    assert float(sa["data_samples"].gt_img.max()) <= 1.0


def test_sr_pairs_div2k_names_and_missing_partner(tmp_path):
    hr = np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    _save_png(tmp_path / "train" / "HR" / "0001.png", hr)
    _save_png(tmp_path / "train" / "LR_x2" / "0001x2.png", bicubic_downscale(hr, 2))
    data = SRPairs(data_root=str(tmp_path), split="train")
    assert data.get_data_info(0)["lr_path"].endswith("0001x2.png")
    _save_png(tmp_path / "train" / "HR" / "0002.png", hr)
    with pytest.raises(DataError, match="no LR partner"):
        SRPairs(data_root=str(tmp_path), split="train")


def test_sr_crop_keeps_pairs_aligned(tmp_path):
    rng = np.random.default_rng(1)
    hr = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
    # An LR partner made by plain subsampling: aligned crops satisfy lr == hr[::2, ::2].
    _save_png(tmp_path / "train" / "HR" / "a.png", hr)
    _save_png(tmp_path / "train" / "LR_x2" / "a.png", np.ascontiguousarray(hr[::2, ::2]))
    data = SRPairs(
        data_root=str(tmp_path),
        split="train",
        pipeline=[LoadSRPair(), RandomSRCrop(lr_size=8), PackSRInputs()],
    )
    np.random.seed(0)
    corners = set()
    for _ in range(10):
        item = data[0]
        lr = item["inputs"].float() / 255.0
        gt = item["data_samples"].gt_img
        assert lr.shape == (3, 8, 8) and gt.shape == (3, 16, 16)
        assert torch.allclose(lr, gt[:, ::2, ::2], atol=1e-6)
        corners.add(float(gt[0, 0, 0]))
    assert len(corners) > 1  # the crops move


def test_sr_flip_transforms_both_images_alike():
    rng = np.random.default_rng(2)
    hr = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    lr = bicubic_downscale(hr, 2)
    np.random.seed(0)
    seen = set()
    for _ in range(12):
        out = RandomSRFlip(prob=0.5)({"img": lr.copy(), "gt_img": hr.copy()})
        # The downscale commutes with flips and transposes (PIL's kernel is symmetric).
        redone = bicubic_downscale(out["gt_img"], 2).astype(int)
        assert np.abs(redone - out["img"].astype(int)).max() <= 1
        seen.add(out["img"].tobytes())
    assert len(seen) > 2


def test_sr_crop_larger_than_image_is_a_data_error():
    results = {"img": np.zeros((4, 4, 3), np.uint8), "gt_img": np.zeros((8, 8, 3), np.uint8)}
    with pytest.raises(DataError, match="lr_size"):
        RandomSRCrop(lr_size=8)({**results, "scale": 2, "img_path": "x.png"})


def test_format_table_aligns_columns():
    lines = format_table(["name", "value"], [["a", 0.5], ["bb", 12]])
    assert lines[0].split() == ["name", "value"]
    assert lines[2].endswith("0.5000") and lines[3].endswith("12")
    assert len({len(line) for line in lines[1:]}) == 1


def test_misspelt_hf_config_key_is_an_error():
    from adtool.errors import ConfigError
    from adtool.models.hf.base import build_hf_model

    with pytest.raises(ConfigError, match="'num_hiden_layers'.*did you mean 'num_hidden_layers'"):
        build_hf_model(
            "ViTForImageClassification",
            "ViTConfig",
            "google/vit-base-patch16-224",
            hf_config=dict(num_hiden_layers=1),
        )
