"""The original framework's Python API (adtool.apis.simple): keywords, lists, globals,
aliases. Runs are tiny: random weights, 64 px, the generated tiny_data."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
from mmengine.config import Config

from adtool.apis import (
    get_globals,
    merged_config,
    reset_globals,
    resolve_config,
    set_globals,
    train,
    train_models,
)
from adtool.apis.config_index import alias_index, config_aliases, list_configs

STFPM = "stfpm_effnetlite0_sample"
PATCHCORE = "patchcore_effnetlite0_sample"
# Random weights: no download, no weight files in tests.
RANDOM = {"model.teacher.weights": None}
RANDOM_FIT = {"model.backbone.weights": None}


@pytest.fixture(autouse=True)
def _fresh_globals():
    reset_globals()
    yield
    reset_globals()


def _sizes(cfg: Config) -> list:
    """Every Resize/CenterCrop size of every loader pipeline, in order."""
    out = []
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        if not cfg.get(key):
            continue
        for step in cfg[key]["dataset"]["pipeline"]:
            if step["type"] in ("Resize", "CenterCrop"):
                out.append((step["type"], step["size"]))
    return out


def _iter_config(tmp_path: Path) -> Path:
    """STFPM on an IterBasedTrainLoop (no iteration-trained config on main yet)."""
    base = resolve_config(STFPM).resolve()
    path = tmp_path / "stfpm_iter_sample.py"
    path.write_text(
        f'_base_ = "{base}"\n'
        'train_cfg = dict(_delete_=True, type="IterBasedTrainLoop", max_iters=1000, '
        "val_interval=1000)\n"
    )
    return path


def test_num_epochs_sets_max_epochs_and_img_size_every_resize(tiny_data):
    cfg = merged_config("sample", "tiles", STFPM, data_root=tiny_data, num_epochs=3, img_size=96)
    assert cfg.train_cfg.max_epochs == 3
    assert _sizes(cfg) == [("Resize", 96)] * 3
    plain = merged_config("sample", "tiles", STFPM, data_root=tiny_data)
    assert plain.train_cfg.max_epochs == 12
    assert _sizes(plain) == [("Resize", 128)] * 3


def test_img_size_keeps_the_crop_ratio_and_sets_input_size():
    # padim_r18: Resize 256 then CenterCrop 224; img_size is the crop (the model input).
    cfg = merged_config("mvtec", "bottle", "padim-resnet18", img_size=112)
    assert set(_sizes(cfg)) == {("Resize", 128), ("CenterCrop", 112)}
    flow = merged_config("mvtec", "bottle", "fastflow-cait", img_size=64)
    assert flow.model.input_size == 64
    assert flow.model.backbone.img_size == 64


def test_batch_size_and_normalize(tiny_data):
    cfg = merged_config(
        "sample", "tiles", STFPM, data_root=tiny_data, batch_size=2, normalize=False
    )
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.model.data_preprocessor.mean == [0.0, 0.0, 0.0]
    assert cfg.model.data_preprocessor.std == [255.0, 255.0, 255.0]
    kept = merged_config("sample", "tiles", STFPM, data_root=tiny_data, normalize=True)
    assert kept.model.data_preprocessor.mean == [127.5, 127.5, 127.5]


def test_fit_model_warns_that_it_has_no_epochs(tiny_data):
    with pytest.warns(UserWarning, match="fits once"):
        cfg = merged_config("sample", "tiles", PATCHCORE, data_root=tiny_data, num_epochs=5)
    assert "max_epochs" not in cfg.train_cfg and "max_iters" not in cfg.train_cfg


def test_iteration_loop_counts_epochs_over_the_train_set(tiny_data, tmp_path):
    config = str(_iter_config(tmp_path))
    # 6 train images, batch 4 -> 2 iterations per epoch.
    cfg = merged_config("sample", "tiles", config, data_root=tiny_data, num_epochs=3)
    assert cfg.train_cfg.max_iters == 6
    cfg = merged_config("sample", "tiles", config, data_root=tiny_data, num_epochs=3, batch_size=1)
    assert cfg.train_cfg.max_iters == 18


def test_trained_model_uses_the_keywords(tiny_data, tmp_path):
    result = train(
        "sample",
        "tiles",
        STFPM,
        data_root=tiny_data,
        work_dir=tmp_path,
        num_epochs=1,
        img_size=64,
        batch_size=3,
        cfg_options=RANDOM,
    )
    assert isinstance(result, dict)
    assert result["train"]["epochs"] == 1
    assert result["train"]["iters"] == 2  # 6 images in batches of 3
    saved = Config.fromfile(str(tmp_path / "tiles" / "config.py"))
    assert _sizes(saved) == [("Resize", 64)] * 3


def test_lists_and_all_give_one_result_per_pair(tiny_data, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = train(
            "sample",
            "all",
            PATCHCORE,
            data_root=tiny_data,
            work_dir=tmp_path,
            img_size=64,
            cfg_options=RANDOM_FIT,
        )
    assert sorted(r["category"] for r in results) == ["disk", "tiles"]
    pairs = train_models(
        dataset_type="sample",
        categories=["tiles", "disk"],
        models=[PATCHCORE],
        data_root=tiny_data,
        work_dir=tmp_path / "m",
        img_size=64,
        cfg_options=RANDOM_FIT,
    )
    assert [(r["config"], r["category"]) for r in pairs] == [
        (PATCHCORE, "tiles"),
        (PATCHCORE, "disk"),
    ]
    assert (tmp_path / "m" / PATCHCORE / "disk" / "results.json").is_file()
    # The fitted model ran at img_size: its saved config has every Resize at 64 px.
    saved = Config.fromfile(str(tmp_path / "m" / PATCHCORE / "disk" / "config.py"))
    assert _sizes(saved) == [("Resize", 64)] * 2


def test_custom_dataset_name_resolves_under_dataset_dir(own_images, tmp_path):
    root = own_images("folder")
    set_globals(dataset_dir=root.parent, show_globals=False, num_workers=0)
    cfg = merged_config(root.name, None, PATCHCORE)
    assert cfg.test_dataloader.dataset.type == "Folder"
    assert Path(cfg.test_dataloader.dataset.data_root).resolve().is_relative_to(root.resolve())


def test_set_globals_changes_the_next_call_and_nothing_else(tiny_data, tmp_path, capsys):
    before = merged_config("sample", "tiles", STFPM, data_root=tiny_data)
    env = os.environ.get("ADTOOL_BACKBONE_DIR")
    set_globals(
        dataset_dir=tmp_path / "datasets",
        backbone_dir=tmp_path / "bb",
        output_dir=tmp_path,
        seed=7,
        num_workers=0,
        pin_memory=False,
        persistent_workers=True,
        show_globals=True,
    )
    assert "adtool globals" in capsys.readouterr().out
    assert os.environ["ADTOOL_BACKBONE_DIR"] == str(tmp_path / "bb")
    after = merged_config("sample", "tiles", STFPM)
    assert after.randomness.seed == 7
    assert after.train_dataloader.num_workers == 0
    assert after.train_dataloader.persistent_workers is False  # torch needs workers for it
    assert after.test_dataloader.pin_memory is False
    assert after.train_dataloader.dataset.data_root == str(tmp_path / "datasets" / "sample")
    # nothing else: the model, the loop and the pipelines are the config's
    assert after.model == before.model and after.train_cfg == before.train_cfg
    assert _sizes(after) == _sizes(before)
    reset_globals()
    assert set(get_globals().values()) == {None}
    assert os.environ.get("ADTOOL_BACKBONE_DIR") == env
    assert merged_config("sample", "tiles", STFPM, data_root=tiny_data).randomness == (
        before.randomness
    )


def test_every_alias_resolves_to_an_existing_config():
    index = alias_index()
    assert {"fastflow-cait", "padim-resnet18", "stfpm-resnet18"} <= set(index)
    configs = set(list_configs())
    for alias, path in index.items():
        assert path in configs
        assert resolve_config(alias) == path
        assert alias in config_aliases(path)


def test_list_configs_shows_the_aliases_beside_the_stems():
    from typer.testing import CliRunner

    from adtool.cli import app

    out = CliRunner().invoke(app, ["list-configs"], terminal_width=220)
    assert out.exit_code == 0, out.output
    rows = {
        line.split("│")[2].strip(): line.split("│")[4].strip()
        for line in out.output.splitlines()
        if line.count("│") >= 5
    }
    assert rows["fastflow_cait_mvtec"] == "fastflow-cait"
    assert rows["padim_wrn50_mvtec"] == "padim-wide_resnet50_2"
    assert rows["patchcore_effnetlite0_sample"] == ""


def test_an_alias_in_two_configs_is_refused(tmp_path, monkeypatch):
    from adtool.errors import ConfigError

    folder = tmp_path / "toy"
    folder.mkdir()
    for name in ("toy_a_mvtec", "toy_b_mvtec"):
        (folder / f"{name}.py").write_text('alias = ["toy-net"]\n')
    monkeypatch.setenv("ADTOOL_CONFIG_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="alias 'toy-net' of toy_b_mvtec.py is taken"):
        resolve_config("toy-net")


def test_dataset_lists_and_all_give_one_result_per_pair(tiny_data, tmp_path):
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    for name in ("dataset_A", "dataset_B"):  # custom names: the MVTec layout found there
        (datasets / name).symlink_to(tiny_data, target_is_directory=True)
    set_globals(
        dataset_dir=datasets, output_dir=tmp_path / "out", num_workers=0, show_globals=False
    )
    results = train(
        ["dataset_A", "dataset_B"],
        ["tiles", "disk"],
        "patchcore-efficientnet_lite0",
        img_size=64,
        batch_size=4,
        cfg_options=RANDOM_FIT,
    )
    pairs = sorted((Path(r["data_root"]).name, r["category"]) for r in results)
    assert pairs == [
        ("dataset_A", "disk"),
        ("dataset_A", "tiles"),
        ("dataset_B", "disk"),
        ("dataset_B", "tiles"),
    ]
    out = tmp_path / "out" / "patchcore_effnetlite0_mvtec"
    assert (out / "dataset_B" / "disk" / "results.json").is_file()
    assert len(train("all", "tiles", PATCHCORE, img_size=64, cfg_options=RANDOM_FIT)) == 2


def test_iteration_trained_model_runs_num_epochs_over_the_train_set(tiny_data, tmp_path):
    result = train(
        "sample",
        "tiles",
        str(_iter_config(tmp_path)),
        data_root=tiny_data,
        work_dir=tmp_path / "run",
        num_epochs=2,
        batch_size=3,
        img_size=64,
        cfg_options=RANDOM,
    )
    assert result["train"]["iters"] == 4  # 2 epochs of 6 images in batches of 3
    saved = Config.fromfile(str(tmp_path / "run" / "tiles" / "config.py"))
    assert saved.train_cfg.max_iters == 4 and _sizes(saved) == [("Resize", 64)] * 3
