"""The engine path of models trained by gradient, from a config like a model's.

A tiny convolutional autoencoder stands in for STFPM and the others: it is trained with
mmengine's epoch loop, validated with the anomaly metric after each epoch, keeps its best
checkpoint by image AUROC, stops early through mmengine's hook, and resumes.
"""

import json
import logging

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import MMLogger
from torch import nn

from adtool.apis import run_category
from adtool.models.anomaly.base import BaseAnomalyModel
from adtool.registry import HOOKS, MODELS


@MODELS.register_module(force=True)
class _TinyAE(BaseAnomalyModel):
    def __init__(self, data_preprocessor=None):
        super().__init__(data_preprocessor=data_preprocessor)
        self.enc = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1))
        self.dec = nn.Sequential(
            nn.ConvTranspose2d(8, 8, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(8, 3, 4, 2, 1)
        )

    def _error(self, x):
        return ((self.dec(self.enc(x)) - x) ** 2).mean(1)

    def loss(self, inputs, data_samples):
        return {"loss": self._error(inputs).mean()}

    def anomaly_outputs(self, inputs):
        maps = self._error(inputs)
        return maps.flatten(1).amax(1), maps


@HOOKS.register_module(force=True)
class _StopAfterFirstEpoch(Hook):
    """Simulates a run killed right after epoch 1 was checkpointed."""

    priority = "LOWEST"  # after the checkpoint hook

    def after_train_epoch(self, runner):
        raise KeyboardInterrupt


def _cfg(data_root, max_epochs=3, **extra):
    base = Config.fromfile("configs/_base_/schedules/train.py")
    pipeline = [
        dict(type="LoadAnomalyImage"),
        dict(type="LoadAnomalyMask"),
        dict(type="Resize", size=32),
        dict(type="PackAnomalyInputs"),
    ]

    def loader(split, shuffle):
        return dict(
            batch_size=4,
            num_workers=0,
            sampler=dict(type="DefaultSampler", shuffle=shuffle),
            collate_fn=dict(type="pseudo_collate"),
            dataset=dict(
                type="SampleDataset",
                data_root=str(data_root),
                category="tiles",
                split=split,
                pipeline=pipeline,
            ),
        )

    cfg = dict(
        base.to_dict(),
        model=dict(
            type="_TinyAE",
            data_preprocessor=dict(
                type="AnomalyDataPreprocessor", mean=[127.5] * 3, std=[127.5] * 3
            ),
        ),
        train_dataloader=loader("train", True),
        val_dataloader=loader("test", False),
        test_dataloader=loader("test", False),
        val_evaluator=dict(type="AnomalyMetric"),
        test_evaluator=dict(type="AnomalyMetric"),
        optim_wrapper=dict(optimizer=dict(type="Adam", lr=1e-2)),
        custom_hooks=[],
    )
    cfg["train_cfg"] = dict(cfg["train_cfg"], max_epochs=max_epochs)
    cfg.update(extra)
    return Config(cfg)


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def test_trains_validates_and_keeps_best_checkpoint(tiny_data, tmp_path):
    result = run_category(_cfg(tiny_data), "tiles", tmp_path)
    train = result["train"]
    assert train["epochs"] == 3 and train["iters"] == 3 * 2  # 6 train images, batch 4
    assert train["tested"] == "last"
    best = train["best_checkpoint"]
    assert best and (tmp_path / best.split("/")[-1]).is_file()
    assert best.split("/")[-1].startswith("best_image_AUROC_epoch_")
    assert (tmp_path / "epoch_3.pth").is_file()
    # The hook's best score is the best of the three validations the log recorded.
    logged = [
        json.loads(line)
        for path in tmp_path.glob("*/vis_data/scalars.json")
        for line in path.read_text().splitlines()
    ]
    val_aurocs = [r["image_AUROC"] for r in logged if "image_AUROC" in r]
    assert len(val_aurocs) == 3
    assert train["best_image_AUROC"] == pytest.approx(max(val_aurocs))
    # The reported test numbers are those of the final weights: the last validation.
    assert result["image"]["AUROC"] == pytest.approx(val_aurocs[-1])
    # The run's log file is closed (a long benchmark would pile up open files).
    still_open = [
        h
        for logger in MMLogger._instance_dict.values()
        for h in logger.handlers
        if isinstance(h, logging.FileHandler) and str(tmp_path) in h.baseFilename
    ]
    assert not still_open


def test_test_from_best_loads_the_best_epoch(tiny_data, tmp_path):
    result = run_category(_cfg(tiny_data, test_from="best"), "tiles", tmp_path)
    assert result["train"]["tested"] == "best"
    assert result["image"]["AUROC"] == pytest.approx(result["train"]["best_image_AUROC"])


def test_early_stopping_hook_ends_training(tiny_data, tmp_path):
    # min_delta so large that no epoch counts as an improvement: stops after patience=1.
    hook = dict(
        type="EarlyStoppingHook",
        monitor="image_AUROC",
        rule="greater",
        min_delta=2.0,
        patience=1,
    )
    result = run_category(_cfg(tiny_data, max_epochs=10, custom_hooks=[hook]), "tiles", tmp_path)
    assert result["train"]["epochs"] == 2


def test_killed_after_first_epoch_then_resumed_matches_uninterrupted(tiny_data, tmp_path):
    full = run_category(_cfg(tiny_data), "tiles", tmp_path / "full")
    killed = _cfg(tiny_data, custom_hooks=[dict(type="_StopAfterFirstEpoch")])
    with pytest.raises(KeyboardInterrupt):
        run_category(killed, "tiles", tmp_path / "split")
    assert (tmp_path / "split" / "epoch_1.pth").is_file()
    assert not (tmp_path / "split" / "epoch_2.pth").exists()
    resumed = run_category(_cfg(tiny_data), "tiles", tmp_path / "split", resume=True)
    assert resumed["train"]["epochs"] == 3
    a, b = _weights(tmp_path / "full" / "epoch_3.pth"), _weights(tmp_path / "split" / "epoch_3.pth")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)
    assert resumed["image"]["AUROC"] == pytest.approx(full["image"]["AUROC"], abs=1e-6)
