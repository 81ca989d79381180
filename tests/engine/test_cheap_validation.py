"""Cheap per-epoch validation (AnomalyValLoop + AnomalyMetric(keys=...)).

Validation computes only what the checkpoint / early-stop rules monitor, with the same
values as the full report's keys; the work it skips (AUPRO, the report, the maps) is
asserted by counting calls, not by timing.
"""

import json

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import EarlyStoppingHook
from torch import nn

import adtool.evaluation.metrics.anomaly_metric as anomaly_metric_module
import adtool.evaluation.report as report_module
from adtool.apis import run_category
from adtool.engine.validation import monitored_keys
from adtool.errors import ConfigError
from adtool.evaluation import AnomalyMetric
from adtool.models.anomaly.base import BaseAnomalyModel
from adtool.registry import MODELS


@MODELS.register_module(force=True)
class _CheapValAE(BaseAnomalyModel):
    """A tiny autoencoder that counts the maps it was asked for."""

    def __init__(self, data_preprocessor=None):
        super().__init__(data_preprocessor=data_preprocessor)
        self.enc = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1))
        self.dec = nn.Sequential(
            nn.ConvTranspose2d(8, 8, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(8, 3, 4, 2, 1)
        )
        self.map_batches = {"with": 0, "without": 0}

    def _error(self, x):
        return ((self.dec(self.enc(x)) - x) ** 2).mean(1)

    def loss(self, inputs, data_samples):
        return {"loss": self._error(inputs).mean()}

    def anomaly_outputs(self, inputs):
        self.map_batches["with" if self.predict_maps else "without"] += 1
        maps = self._error(inputs)
        return maps.flatten(1).amax(1), maps


def _cfg(data_root, max_epochs=2, **extra):
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
            type="_CheapValAE",
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
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = dict(cfg[key], **value)
        else:
            cfg[key] = value
    return Config(cfg)


def _logged(work_dir):
    return [
        json.loads(line)
        for path in work_dir.glob("*/vis_data/scalars.json")
        for line in path.read_text().splitlines()
    ]


def _samples(n=24, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        label = int(i % 3 == 0)
        mask = torch.zeros(size, size)
        if label:
            mask[2:6, 3:9] = 1
        amap = torch.rand(size, size, generator=g) + 0.8 * mask * torch.rand(1, generator=g)
        out.append(
            {
                "pred_score": torch.rand((), generator=g) + 0.3 * label,
                "gt_label": torch.tensor(label),
                "anomaly_map": amap,
                "gt_mask": mask,
                "img_path": f"{i}.png",
                "defect_type": "scratch" if label else "good",
            }
        )
    return out


@pytest.fixture
def count_calls(monkeypatch):
    """Counts of AUPRO, the full report and the pixel AUROC while the test runs."""
    calls = {"aupro": 0, "build_report": 0, "pixel_auroc": 0}

    def counted(module, name, key):
        original = getattr(module, name)

        def wrapper(*args, **kwargs):
            calls[key] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    counted(report_module, "aupro", "aupro")
    counted(anomaly_metric_module, "aupro", "aupro")
    counted(anomaly_metric_module, "build_report", "build_report")
    counted(anomaly_metric_module, "pixel_auroc", "pixel_auroc")
    counted(report_module, "pixel_auroc", "pixel_auroc")
    return calls


def test_selected_keys_equal_the_full_report_and_skip_the_rest(count_calls):
    samples = _samples()
    full = AnomalyMetric()
    full.process({}, samples)
    expected = full.evaluate(len(samples))
    assert count_calls["build_report"] == 1 and count_calls["aupro"] == 1
    assert set(expected) == {"image_AUROC", "image_AUPR", "image_F1_max"} | {
        "pixel_AUROC",
        "pixel_AUPRO",
    }

    image_only = AnomalyMetric(keys=["image_AUROC", "image_F1_max"])
    image_only.process({}, samples)
    assert all(r["map"] is None and r["mask"] is None for r in image_only.results)
    got = image_only.evaluate(len(samples))
    assert got == {k: expected[k] for k in ("image_AUROC", "image_F1_max")}
    assert 0.5 < got["image_AUROC"] < 1.0  # a value the scores decide, not a constant
    assert image_only.last_report is None and image_only.last_arrays is None
    # Nothing beyond the two keys was computed: no second report, AUPRO or pixel AUROC.
    assert count_calls == {"aupro": 1, "build_report": 1, "pixel_auroc": 1}

    pixel = AnomalyMetric(keys="pixel_AUROC")
    pixel.process({}, samples)
    assert pixel.evaluate(len(samples)) == {"pixel_AUROC": expected["pixel_AUROC"]}
    assert count_calls["aupro"] == 1 and count_calls["pixel_auroc"] == 2

    everything = AnomalyMetric(keys=anomaly_metric_module.METRIC_KEYS)
    everything.process({}, samples)
    assert everything.evaluate(len(samples)) == pytest.approx(expected, abs=0)


def test_unknown_key_is_one_line_config_error():
    with pytest.raises(ConfigError, match="image_AUC.*choose from.*image_AUROC"):
        AnomalyMetric(keys=["image_AUC"])


def test_monitored_keys_read_checkpoint_and_early_stop_hooks():
    class Ckpt:
        save_best = ["image_AUROC", "auto"]

    stop = EarlyStoppingHook(monitor="pixel_AUPRO", rule="greater")
    known = AnomalyMetric.METRIC_KEYS
    assert monitored_keys([Ckpt(), stop, object()], known) == ["image_AUROC", "pixel_AUPRO"]
    other = EarlyStoppingHook(monitor="loss", rule="less")  # not an anomaly metric: not asked for
    assert monitored_keys([other], known) == []


def test_validation_computes_the_monitored_key_only_and_the_test_the_full_report(
    tiny_data, tmp_path, count_calls
):
    cfg = _cfg(tiny_data)
    result = run_category(cfg, "tiles", tmp_path)
    # Two validations and the test: only the test built the report and ran AUPRO.
    assert count_calls["build_report"] == 1 and count_calls["aupro"] == 1
    val = [r for r in _logged(tmp_path) if "image_AUROC" in r]
    assert len(val) == 2
    assert all(set(r) & set(anomaly_metric_module.METRIC_KEYS) == {"image_AUROC"} for r in val)
    # The last validation scored the final weights on the test split: the same number.
    assert result["image"]["AUROC"] == pytest.approx(val[-1]["image_AUROC"], abs=0)
    assert result["pixel"]["AUPRO"] is not None and result["per_defect"]
    assert result["train"]["best_image_AUROC"] == pytest.approx(max(r["image_AUROC"] for r in val))


def test_validation_skips_maps_unless_a_pixel_key_is_monitored(tiny_data, tmp_path):
    from adtool.apis.core import build_runner

    runner = build_runner(_cfg(tiny_data, max_epochs=1), "tiles", tmp_path / "image")
    runner.train()
    model = runner.model
    # 10 test images, batch 4: 3 validation batches without maps; predict_maps restored.
    assert model.map_batches == {"with": 0, "without": 3}
    assert model.predict_maps is True

    hook = dict(type="EarlyStoppingHook", monitor="pixel_AUROC", rule="greater", patience=5)
    runner = build_runner(
        _cfg(tiny_data, max_epochs=1, custom_hooks=[hook]), "tiles", tmp_path / "pixel"
    )
    metrics = runner.train() and runner.message_hub.get_scalar("val/pixel_AUROC")
    assert runner.model.map_batches == {"with": 3, "without": 0}
    assert metrics is not None and np.isfinite(metrics.current())


def test_metrics_all_keeps_the_full_report_each_validation(tiny_data, tmp_path, count_calls):
    cfg = _cfg(tiny_data, val_cfg=dict(metrics="all", extra_metrics=[]))
    run_category(cfg, "tiles", tmp_path)
    assert count_calls["build_report"] == 3  # two validations and the test


def test_bad_val_cfg_metrics_is_config_error(tiny_data, tmp_path):
    cfg = _cfg(tiny_data, val_cfg=dict(metrics="cheap"))
    with pytest.raises(ConfigError, match="val_cfg.metrics='cheap'.*monitored.*all"):
        run_category(cfg, "tiles", tmp_path)
