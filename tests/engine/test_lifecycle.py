"""The model lifecycle the engine drives, each hook proven with a toy model.

* ``before_train`` / ``after_train`` are called once, with the training loader, by the
  ``ModelLifecycleHook`` the runner adds by itself (no config names it), and what
  ``after_train`` computes is in the saved checkpoint;
* an overridden ``train_step`` gets an ``OptimWrapperDict`` built from the config and
  steps both optimisers; both states are saved and restored on resume;
* a model that returns no anomaly map gets ``pixel: null`` and no overlays, and every
  other result file is still written.
"""

import json

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapperDict
from torch import nn

from adtool.apis import run_category
from adtool.engine import AnomalyRunner, ModelLifecycleHook
from adtool.models.anomaly.base import BaseAnomalyModel, MemoryBankModel
from adtool.registry import MODELS

# ---------------------------------------------------------------- toy models


@MODELS.register_module(force=True)
class _RecordingModel(BaseAnomalyModel):
    """Trained by gradient; records its lifecycle calls; after_train sets a buffer."""

    calls: list = []

    def __init__(self, data_preprocessor=None):
        super().__init__(data_preprocessor=data_preprocessor)
        self.conv = nn.Conv2d(3, 1, 3, padding=1)
        self.register_buffer("calibration", torch.zeros(()))

    def before_train(self, train_loader):
        self.calls.append(("before_train", len(train_loader.dataset), len(train_loader)))

    def after_train(self, train_loader):
        self.calls.append(("after_train", len(train_loader.dataset), len(train_loader)))
        # A pass over the training data after training, as EfficientAD's quantiles are.
        self.calibration.fill_(sum(len(b["inputs"]) for b in train_loader) + 0.5)

    def loss(self, inputs, data_samples):
        self.calls.append(("loss", len(inputs)))
        return {"loss": self.conv(inputs).pow(2).mean()}

    def anomaly_outputs(self, inputs):
        maps = self.conv(inputs).squeeze(1).abs()
        return maps.flatten(1).amax(1), maps


@MODELS.register_module(force=True)
class _RecordingFitModel(MemoryBankModel):
    """Fitted by FitLoop; records the order of lifecycle calls and fit steps."""

    calls: list = []

    def __init__(self, data_preprocessor=None):
        super().__init__(data_preprocessor=data_preprocessor)
        self.register_buffer("mean", torch.zeros(3))

    def before_train(self, train_loader):
        self.calls.append("before_train")

    def after_train(self, train_loader):
        self.calls.append("after_train")

    def embed(self, inputs):
        self.calls.append("embed")
        return inputs.mean((2, 3))

    def fit_embeddings(self, embeddings):
        self.calls.append("fit")
        self.mean.copy_(embeddings.mean(0))

    def anomaly_outputs(self, inputs):
        maps = (inputs - self.mean[:, None, None]).abs().mean(1)
        return maps.flatten(1).amax(1), maps


@MODELS.register_module(force=True)
class _TwoOptimiserModel(BaseAnomalyModel):
    """A generator and a critic, each stepped by its own optimiser (GANomaly-like)."""

    received: list = []

    def __init__(self, data_preprocessor=None):
        super().__init__(data_preprocessor=data_preprocessor)
        self.generator = nn.Conv2d(3, 3, 3, padding=1)
        self.critic = nn.Conv2d(3, 1, 3, padding=1)

    def train_step(self, data, optim_wrapper):
        self.received.append(type(optim_wrapper))
        data = self.data_preprocessor(data, True)
        inputs = data["inputs"]
        with optim_wrapper["generator"].optim_context(self.generator):
            g_loss = (self.generator(inputs) - inputs).pow(2).mean()
            optim_wrapper["generator"].update_params(g_loss)
        with optim_wrapper["critic"].optim_context(self.critic):
            c_loss = self.critic(self.generator(inputs).detach()).pow(2).mean()
            optim_wrapper["critic"].update_params(c_loss)
        return {"loss_generator": g_loss.detach(), "loss_critic": c_loss.detach()}

    def anomaly_outputs(self, inputs):
        maps = (self.generator(inputs) - inputs).pow(2).mean(1)
        return maps.flatten(1).amax(1), maps


@MODELS.register_module(force=True)
class _ImageOnlyModel(MemoryBankModel):
    """Scores whole images (distance of the mean colour), no anomaly map."""

    def __init__(self, data_preprocessor=None):
        super().__init__(data_preprocessor=data_preprocessor)
        self.register_buffer("mean", torch.zeros(3))

    def embed(self, inputs):
        return inputs.mean((2, 3))

    def fit_embeddings(self, embeddings):
        self.mean.copy_(embeddings.mean(0))

    def anomaly_outputs(self, inputs):
        return (inputs.mean((2, 3)) - self.mean).norm(dim=1), None


# ---------------------------------------------------------------- configs


def _loader(data_root, split, shuffle):
    pipeline = [
        dict(type="LoadAnomalyImage"),
        dict(type="LoadAnomalyMask"),
        dict(type="Resize", size=32),
        dict(type="PackAnomalyInputs"),
    ]
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


def _cfg(data_root, model_type, schedule="train", **extra):
    base = Config.fromfile("configs/_base_/default_runtime.py").to_dict()
    base.update(Config.fromfile(f"configs/_base_/schedules/{schedule}.py").to_dict())
    cfg = dict(
        base,
        default_scope="adtool",
        model=dict(
            type=model_type,
            data_preprocessor=dict(
                type="AnomalyDataPreprocessor", mean=[127.5] * 3, std=[127.5] * 3
            ),
        ),
        train_dataloader=_loader(data_root, "train", schedule == "train"),
        test_dataloader=_loader(data_root, "test", False),
        test_evaluator=dict(type="AnomalyMetric"),
        custom_hooks=[],
    )
    if schedule == "train":
        cfg.update(
            val_dataloader=_loader(data_root, "test", False),
            val_evaluator=dict(type="AnomalyMetric"),
            optim_wrapper=dict(optimizer=dict(type="SGD", lr=1e-2)),
        )
        cfg["train_cfg"] = dict(cfg["train_cfg"], max_epochs=2)
    cfg.update(extra)
    return Config(cfg)


def _checkpoint(path):
    return torch.load(path, map_location="cpu", weights_only=False)


# ---------------------------------------------------------------- tests


def test_before_and_after_train_get_the_train_loader_once(tiny_data, tmp_path):
    _RecordingModel.calls.clear()
    run_category(_cfg(tiny_data, "_RecordingModel"), "tiles", tmp_path)
    calls = _RecordingModel.calls
    # 6 training images, batch 4: 2 batches per epoch, 2 epochs.
    assert calls[0] == ("before_train", 6, 2)
    assert calls[1:5] == [("loss", 4), ("loss", 2), ("loss", 4), ("loss", 2)]
    assert calls[5:] == [("after_train", 6, 2)]
    # What after_train computed is in the checkpoint that was saved and tested.
    assert _checkpoint(tmp_path / "epoch_2.pth")["state_dict"]["calibration"] == 6.5


def test_lifecycle_hook_is_added_once_without_config(tiny_data, tmp_path):
    plain = _cfg(tiny_data, "_RecordingModel", work_dir=str(tmp_path / "a"))
    named = _cfg(
        tiny_data,
        "_RecordingModel",
        work_dir=str(tmp_path / "b"),
        custom_hooks=[dict(type="ModelLifecycleHook")],
    )
    for i, cfg in enumerate((plain, named)):
        cfg.experiment_name = f"lifecycle_hook_{i}"  # mmengine instance names must differ
        runner = AnomalyRunner.from_cfg(cfg)
        assert sum(isinstance(h, ModelLifecycleHook) for h in runner.hooks) == 1


def test_fit_loop_calls_lifecycle_around_the_fit(tiny_data, tmp_path):
    _RecordingFitModel.calls.clear()
    run_category(_cfg(tiny_data, "_RecordingFitModel", schedule="fit"), "tiles", tmp_path)
    assert _RecordingFitModel.calls == ["before_train", "embed", "embed", "fit", "after_train"]


def test_two_optimisers_both_step_save_and_resume(tiny_data, tmp_path):
    optim_wrapper = dict(
        constructor="MultiOptimWrapperConstructor",
        generator=dict(type="OptimWrapper", optimizer=dict(type="SGD", lr=0.1)),
        critic=dict(type="OptimWrapper", optimizer=dict(type="Adam", lr=0.01)),
    )
    cfg = _cfg(tiny_data, "_TwoOptimiserModel", optim_wrapper=optim_wrapper)
    cfg.train_cfg.max_epochs = 1
    torch.manual_seed(0)
    initial = MODELS.build(cfg.model).state_dict()
    torch.manual_seed(0)
    _TwoOptimiserModel.received.clear()
    run_category(cfg, "tiles", tmp_path)
    assert set(_TwoOptimiserModel.received) == {OptimWrapperDict}

    ckpt = _checkpoint(tmp_path / "epoch_1.pth")
    weights = ckpt["state_dict"]
    for part in ("generator", "critic"):
        assert not torch.equal(weights[f"{part}.weight"], initial[f"{part}.weight"]), part
    # Both optimisers' states are saved under their names.
    assert set(ckpt["optimizer"]) == {"generator", "critic"}
    adam = ckpt["optimizer"]["critic"]["state"][0]
    assert float(adam["step"]) == 2  # two iterations in epoch 1

    # Resuming for a second epoch restores Adam's state: its step count goes on to 4.
    cfg.train_cfg.max_epochs = 2
    run_category(cfg, "tiles", tmp_path, resume=True)
    adam = _checkpoint(tmp_path / "epoch_2.pth")["optimizer"]["critic"]["state"][0]
    assert float(adam["step"]) == 4


def test_multi_optim_constructor_names_a_wrong_submodule(tiny_data, tmp_path):
    from adtool.errors import ConfigError

    optim_wrapper = dict(
        constructor="MultiOptimWrapperConstructor",
        generatr=dict(type="OptimWrapper", optimizer=dict(type="SGD", lr=0.1)),
    )
    cfg = _cfg(tiny_data, "_TwoOptimiserModel", optim_wrapper=optim_wrapper)
    with pytest.raises(ConfigError, match="generatr.*generator"):
        run_category(cfg, "tiles", tmp_path)


def test_image_only_model_gets_null_pixel_block_and_no_overlays(tiny_data, tmp_path):
    result = run_category(_cfg(tiny_data, "_ImageOnlyModel", schedule="fit"), "tiles", tmp_path)
    assert result["pixel"] is None
    assert 0.0 <= result["image"]["AUROC"] <= 1.0
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["pixel"] is None and written["n_test"] == result["n_test"] > 0
    for name in ("results.txt", "histogram.png", "roc.png", "pr.png", "scores.csv"):
        assert (tmp_path / name).is_file(), name
    assert not (tmp_path / "maps").exists() or not any((tmp_path / "maps").iterdir())
