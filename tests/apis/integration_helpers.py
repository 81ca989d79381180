"""The integration test's shrink of a real config to a unit-test budget, and its keys.

(tests/apis has no ``__init__.py``; pytest puts this folder on ``sys.path``, so test
modules import this file as ``integration_helpers``.)

A config runs here as written, shrunk in two steps:

1. the generic shrink, the same for every config of a kind: anomaly configs get random
   weights on every backbone, 64 px images, batches of 4, the sample data and one
   validated epoch; HF task configs get their task's generated data, batches of 4 and one
   epoch;
2. the config's own ``tiny_overrides`` (a top-level dict of ``--cfg-options`` style
   dotted keys in the config file, e.g. a tiny timm arch of the same family), for what
   the generic shrink cannot know. The runner never reads ``tiny_overrides``.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

from mmengine.config import Config

from adtool.apis import load_config
from adtool.apis.core import use_dataset
from adtool.apis.overrides import check_override_keys

LOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")
TINY_KEY = "tiny_overrides"
BATCH = 4

DESIGN_KEYS = {
    "model",
    "config",
    "dataset",
    "category",
    "image",
    "pixel",
    "thresholds",
    "confusion",
    "per_defect",
    "timing",
    "n_train",
    "n_test",
}
THRESHOLD_NAMES = {"f1_percentile", "f1_uniform", "youden_j", "percentile_95"}
# What every anomaly run writes beside its checkpoints.
FILES = [
    "config.py",
    "last_checkpoint",
    "results.json",
    "results.txt",
    "scores.csv",
    "histogram.png",
    "roc.png",
    "pr.png",
]
HF_KEYS = {
    "task",
    "model",
    "config",
    "dataset",
    "data_root",
    "metrics",
    "thresholds",
    "timing",
    "n_train",
    "n_test",
    "train",
}
# The metric names each HF task reports (results.json "metrics").
HF_METRICS = {
    "classification": {"accuracy", "top5_accuracy"},
    "detection": {"mAP", "mAP50", "mAP75"},
    "segmentation": {"mIoU", "pixel_accuracy"},
    "super_resolution": {"PSNR", "SSIM"},
}


def tiny_overrides(config: str | os.PathLike) -> dict:
    """The ``tiny_overrides`` dict of a config file ({} when it has none)."""
    return dict(load_config(config).get(TINY_KEY) or {})


def _random_backbones(node) -> None:
    """``weights=None`` on every ``*Backbone`` dict (teachers and students included)."""
    if isinstance(node, dict):
        if str(node.get("type", "")).endswith("Backbone") and "weights" in node:
            node["weights"] = None
        for value in node.values():
            _random_backbones(value)
    elif isinstance(node, list | tuple):
        for value in node:
            _random_backbones(value)


def _one_epoch(cfg: Config) -> None:
    train_cfg = cfg.get("train_cfg")
    if train_cfg and "max_epochs" in train_cfg:
        train_cfg["max_epochs"] = 1
        if cfg.get("val_cfg") and cfg.get("val_dataloader"):
            train_cfg["val_interval"] = 1


def _current(cfg: Config, dotted: str):
    node = cfg
    for part in dotted.split("."):
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, TypeError, ValueError):
            return None
    return node


def _apply_tiny_overrides(cfg: Config) -> Config:
    """Merge the config's ``tiny_overrides``, validated like --cfg-options; the key stays
    (the runner ignores it, and the run proves it does).

    A dict given for a key that holds no dict (``hf_config=None`` in a pretrained
    config) replaces it: mmengine would refuse to merge a dict into None.
    """
    overrides = dict(cfg.get(TINY_KEY) or {})
    check_override_keys(cfg, overrides)
    for key, value in overrides.items():
        if isinstance(value, dict) and not isinstance(_current(cfg, key), dict):
            overrides[key] = {"_delete_": True, **value}
    cfg.merge_from_dict(overrides)
    return cfg


def tiny(config: str | os.PathLike, data_root, size: int = 64, options: dict | None = None):
    """An anomaly config, generically shrunk, then its ``tiny_overrides`` and ``options``.

    Every dataloader (train, val, test; a None one is skipped) reads ``data_root`` in
    batches of 4; ``Resize`` goes to ``size`` and ``CenterCrop`` to ``size - 8``; a
    model ``input_size`` becomes ``size``; every backbone gets random weights; a trained
    model runs one validated epoch.
    """
    cfg = load_config(config)
    if cfg.get("train_dataloader", {}).get("dataset", {}).get("type") != "SampleDataset":
        use_dataset(cfg, "sample")
    _random_backbones(cfg.model)
    if "input_size" in cfg.model:
        cfg.model["input_size"] = size
    _one_epoch(cfg)
    for key in LOADERS:
        if not cfg.get(key):
            continue
        cfg[key]["batch_size"] = BATCH
        cfg[key]["dataset"]["data_root"] = str(data_root)
        for step in cfg[key]["dataset"]["pipeline"]:
            if step["type"] == "Resize":
                step["size"] = size
            if step["type"] == "CenterCrop":
                step["size"] = size - 8
    _apply_tiny_overrides(cfg)
    if options:
        cfg.merge_from_dict(copy.deepcopy(options))
    return cfg


def tiny_task(config: str | os.PathLike, data_root: str | os.PathLike) -> Config:
    """An HF task config, generically shrunk (its task's data, batches of 4, one epoch),
    then its ``tiny_overrides``."""
    cfg = load_config(config)
    _one_epoch(cfg)
    for key in LOADERS:
        if not cfg.get(key):
            continue
        cfg[key]["batch_size"] = BATCH
        cfg[key]["dataset"]["data_root"] = str(Path(data_root))
    return _apply_tiny_overrides(cfg)
