"""Every config end to end from its real file, and the runs that span configs.

``test_config_end_to_end`` is parametrised over ``list_configs()``: a config added to
configs/ is tested the day it is added, with no list to update here. Each run uses the
generic shrink of integration_helpers.py plus the config's own ``tiny_overrides`` and
checks the DESIGN.md outputs of its kind (anomaly: files, keys, counts, per-defect,
thresholds, confusion sums, timings, the fitted statistics or the ``train`` block in the
checkpoint; HF tasks: their results keys and metrics). For the cheapest config of each
anomaly model folder the run's checkpoint is tested again and must reproduce every score.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import torch
from integration_helpers import (
    BATCH,
    DESIGN_KEYS,
    FILES,
    HF_KEYS,
    HF_METRICS,
    THRESHOLD_NAMES,
    tiny,
    tiny_overrides,
    tiny_task,
)
from mmengine.config import Config

from adtool.apis import load_config, run, run_category
from adtool.apis.config_index import list_configs, resolve_config

CONFIGS = [p.stem for p in list_configs()]
N_TRAIN, N_GOOD, N_PER_DEFECT, DEFECTS = 6, 3, 2, {"crack", "missing", "spot"}
N_TEST = N_GOOD + N_PER_DEFECT * len(DEFECTS)


def _task(config: str) -> str:
    return Config.fromfile(str(resolve_config(config))).get("task", "anomaly")


def _scores(path: Path) -> list[tuple[str, float]]:
    with open(path) as f:
        return [(row["img_path"], float(row["score"])) for row in csv.DictReader(f)]


def _checkpoint(work: Path) -> Path:
    """The checkpoint mmengine's ``last_checkpoint`` names."""
    path = Path((work / "last_checkpoint").read_text().strip())
    assert path.is_file() and path.parent == work
    return path


def _free_disk(work: Path) -> None:
    # A WideResNet-50 checkpoint weighs up to 1 GB and pytest keeps old tmp dirs around.
    for path in work.glob("**/*.pth"):
        path.unlink()


# --------------------------------------------------------------- the parametrised test


def _reload_configs() -> set[str]:
    """One config per anomaly model folder, the cheapest: a sample or EfficientNet one."""
    chosen: dict[str, tuple] = {}
    for path in list_configs():
        if _task(path.stem) != "anomaly":
            continue
        rank = (0 if "sample" in path.stem else 1 if "effnetlite0" in path.stem else 2, path.stem)
        best = chosen.get(path.parent.name)
        if best is None or rank < best:
            chosen[path.parent.name] = rank
    return {stem for _, stem in chosen.values()}


RELOAD_CONFIGS = _reload_configs()


def _check_reload(cfg: Config, work: Path, trained: dict) -> None:
    """tools/test.py on the run's checkpoint reproduces every score and the thresholds."""
    checkpoint = _checkpoint(work / "train")
    tested = run_category(cfg, "tiles", work / "test", checkpoint=str(checkpoint))
    assert _scores(work / "test" / "scores.csv") == _scores(work / "train" / "scores.csv")
    assert tested["image"] == trained["image"] and tested["pixel"] == trained["pixel"]
    assert tested["thresholds"] == trained["thresholds"]
    assert tested["n_train"] is None and tested["timing"]["train_s"] == 0
    assert "train" not in tested and tested["checkpoint"] == str(checkpoint)


def test_every_config_is_parametrised_and_its_tiny_overrides_exist():
    on_disk = [p.stem for p in list_configs()]
    assert CONFIGS == on_disk and len(CONFIGS) > 0
    assert len(set(CONFIGS)) == len(CONFIGS)
    for config in CONFIGS:
        merged = load_config(config).to_dict()
        for dotted in tiny_overrides(config):
            node = merged
            for part in dotted.split("."):
                # A stale override (its key renamed or removed) must not pass unseen.
                if isinstance(node, list):
                    assert part.isdigit() and int(part) < len(node), f"{config}: {dotted}"
                    node = node[int(part)]
                else:
                    assert isinstance(node, dict) and part in node, f"{config}: {dotted}"
                    node = node[part]


def _check_anomaly_run(config: str, work: Path, tiny_data) -> None:
    cfg = tiny(config, tiny_data)
    result = run_category(cfg, "tiles", work / "train")
    if config in RELOAD_CONFIGS:
        _check_reload(cfg, work, result)
    work = work / "train"
    for name in FILES:
        assert (work / name).is_file(), name
    assert not list(work.glob("**/*.tmp"))
    on_disk = json.loads((work / "results.json").read_text())
    assert result == on_disk
    assert DESIGN_KEYS <= set(on_disk)
    assert on_disk["model"] == cfg.model.type and on_disk["config"] == config
    assert on_disk["dataset"] == "sample" and on_disk["category"] == "tiles"
    assert on_disk["n_train"] == N_TRAIN and on_disk["n_test"] == N_TEST
    assert set(on_disk["per_defect"]) == DEFECTS
    assert all(v["n"] == N_PER_DEFECT for v in on_disk["per_defect"].values())
    assert 0 <= on_disk["image"]["AUROC"] <= 1
    if on_disk["pixel"] is not None:
        assert 0 <= on_disk["pixel"]["AUROC"] <= 1 and 0 <= on_disk["pixel"]["AUPRO"] <= 1
        assert list((work / "maps").glob("*/*.png"))
    # U-Flow alone adds its a-contrario threshold as a fifth entry.
    extra = {"nfa"} if cfg.model.type == "UFlow" else set()
    assert set(on_disk["thresholds"]) == THRESHOLD_NAMES | extra
    c = on_disk["confusion"]
    assert c["TP"] + c["FN"] == N_PER_DEFECT * len(DEFECTS) and c["TN"] + c["FP"] == N_GOOD
    assert on_disk["timing"]["train_s"] > 0 and on_disk["timing"]["test_images_per_s"] > 0
    scores = [s for _, s in _scores(work / "scores.csv")]
    assert len(scores) == N_TEST and all(math.isfinite(s) for s in scores)
    _check_saved_config(work, cfg)

    ckpt = torch.load(_checkpoint(work), weights_only=False, map_location="cpu")
    state = ckpt["state_dict"]
    if "max_iters" in cfg.train_cfg:
        # A model trained by steps (IterBasedTrainLoop): every step ran, no validation.
        assert on_disk["train"]["iters"] == cfg.train_cfg.max_iters
        assert on_disk["train"]["tested"] == "last"
        assert ckpt["optimizer"]["state"]
    elif cfg.train_cfg.get("max_epochs") is None:
        # A fitted model: its statistics (memory bank, Gaussians, PCA) are in the
        # checkpoint, and there is no optimiser to keep.
        assert "optimizer" not in ckpt
        fitted = [
            k for k, v in state.items() if k.startswith("head.") and v.numel() and v.any().item()
        ]
        assert fitted, sorted(state)
    else:
        # A trained model: every epoch ran (and validated, when the config validates).
        epochs = cfg.train_cfg.max_epochs
        train = on_disk["train"]
        assert train["epochs"] == epochs
        assert train["iters"] == epochs * math.ceil(N_TRAIN / BATCH)
        assert train["tested"] in ("last", "best")
        if cfg.get("val_dataloader"):
            assert 0 <= train["best_image_AUROC"] <= 1
            assert Path(train["best_checkpoint"]).is_file()
        else:
            assert train["best_image_AUROC"] is None and train["best_checkpoint"] is None
        optim = ckpt["optimizer"]
        # Several optimisers (an OptimWrapperDict) are saved by name, each with its state.
        states = [optim["state"]] if "state" in optim else [o["state"] for o in optim.values()]
        assert states and all(states)
    del ckpt, state


@pytest.fixture(scope="module")
def task_data(tmp_path_factory):
    """Generated data per HF task, made on first use: small, and the n_train / n_test."""
    from adtool.datasets.hf import (
        make_classification_dataset,
        make_coco_detection_dataset,
        make_segmentation_dataset,
        make_sr_dataset,
    )

    makers = {
        # 4 classes x (4 train, 2 val)
        "classification": (
            lambda r: make_classification_dataset(r, n_train_per_class=4, n_val_per_class=2),
            16,
            8,
        ),
        "detection": (lambda r: make_coco_detection_dataset(r, 8, 4, size=128, seed=0), 8, 4),
        "segmentation": (lambda r: make_segmentation_dataset(r, 8, 4, size=64, seed=0), 8, 4),
        "super_resolution": (lambda r: make_sr_dataset(r, n_train=4, n_val=2, size=48), 4, 2),
    }
    made = {}

    def get(task: str):
        if task not in made:
            make, n_train, n_test = makers[task]
            made[task] = (make(tmp_path_factory.mktemp(task)), n_train, n_test)
        return made[task]

    return get


def _check_task_run(config: str, work: Path, task_data) -> None:
    task = _task(config)
    assert task in HF_METRICS, f"{config}: no generated data for task '{task}' in this test"
    root, n_train, n_test = task_data(task)
    cfg = tiny_task(config, root)
    # run_category hands a task config (no categories) to the task run path.
    result = run_category(cfg, None, work)
    on_disk = json.loads((work / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(result))
    assert HF_KEYS <= set(on_disk)
    assert on_disk["task"] == task and on_disk["model"] == cfg.model.type
    assert on_disk["config"] == config
    assert set(on_disk["metrics"]) == HF_METRICS[task]
    assert all(math.isfinite(v) for v in on_disk["metrics"].values())
    assert on_disk["n_train"] == n_train and on_disk["n_test"] == n_test
    assert on_disk["train"]["epochs"] == 1
    assert on_disk["train"]["iters"] == math.ceil(n_train / BATCH)
    assert Path(on_disk["train"]["checkpoint"]) == _checkpoint(work)
    assert on_disk["timing"]["train_s"] > 0 and on_disk["timing"]["test_images_per_s"] > 0
    for name in ("config.py", "results.txt"):
        assert (work / name).is_file(), name
    assert not list(work.glob("**/*.tmp"))
    _check_saved_config(work, cfg)


def _check_saved_config(work: Path, cfg: Config) -> None:
    """The run's config.py reloads as the config that ran, ``tiny_overrides`` included
    (the runner ignored that key; keeping it in the run proves so)."""
    saved = Config.fromfile(str(work / "config.py"))
    assert saved.model.type == cfg.model.type
    assert set(saved.get("tiny_overrides") or {}) == set(cfg.get("tiny_overrides") or {})


@pytest.mark.parametrize("config", CONFIGS)
def test_config_end_to_end(config, tiny_data, task_data, tmp_path):
    work = tmp_path / "work"
    try:
        if _task(config) == "anomaly":
            _check_anomaly_run(config, work, tiny_data)
        else:
            _check_task_run(config, work, task_data)
    finally:
        _free_disk(work)


# ------------------------------------------------------------ runs that span configs


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
        assert saved["n_test"] == N_TEST
    cfg_text = (tmp_path / "disk" / "config.py").read_text()
    assert "coreset_ratio=0.05" in cfg_text and "'disk'" in cfg_text


def test_short_names_resolve_to_paper_configs():
    assert resolve_config("patchcore").stem == "patchcore_wrn50_mvtec"
    assert resolve_config("patchcore_r18_mvtec").name == "patchcore_r18_mvtec.py"


def test_fastflow_paper_settings_in_the_configs():
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
