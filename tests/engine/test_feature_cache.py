"""Training caches: frozen features computed once, images decoded once, same training."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook

from adtool.apis import load_config
from adtool.engine import AnomalyRunner
from adtool.engine.feature_cache import (
    DecodeCache,
    FrozenFeatureCache,
    cache_options,
    first_random_transform,
)
from adtool.errors import ConfigError
from adtool.models.anomaly.base import BaseAnomalyModel
from adtool.registry import HOOKS, MODELS, TRANSFORMS
from adtool.structures import AnomalyDataSample


@HOOKS.register_module(force=True)
class _RecordLosses(Hook):
    """Keeps every step's loss."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.losses.append(float(outputs["loss"].detach()))


def _random_backbones(node) -> None:
    if isinstance(node, dict):
        if str(node.get("type", "")).endswith("Backbone") and "weights" in node:
            node["weights"] = None
        for value in node.values():
            _random_backbones(value)
    elif isinstance(node, list | tuple):
        for value in node:
            _random_backbones(value)


def _cfg(config, data_root, work_dir, size=32, epochs=2, **options):
    cfg = load_config(config)
    _random_backbones(cfg.model)
    if "input_size" in cfg.model:
        cfg.model["input_size"] = size
    # 6 images in batches of 3, reshuffled each epoch. Equal batch sizes make the test
    # bitwise: a frozen conv's row depends on the batch size it is computed in (up to 5e-7
    # on these features, oneDNN), not on the other rows; a last partial batch would differ
    # from its recomputation by that rounding.
    cfg.train_dataloader.batch_size = 3
    cfg.train_dataloader.dataset.data_root = str(data_root)
    cfg.train_dataloader.dataset.category = "tiles"
    for step in cfg.train_dataloader.dataset.pipeline:
        if step["type"] == "Resize":
            step["size"] = size
    cfg.train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=epochs, val_interval=epochs + 1)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=epochs)
    cfg.custom_hooks = [dict(type="_RecordLosses")]
    cfg.work_dir = str(work_dir)
    cfg.merge_from_dict(options)
    return cfg


def _train(cfg):
    runner = AnomalyRunner.from_cfg(cfg)
    runner.train()
    hook = next(h for h in runner.hooks if isinstance(h, _RecordLosses))
    weights = {k: v.clone() for k, v in runner.model.state_dict().items()}
    return hook.losses, weights, runner.message_hub.get_info("feature_cache")


CASES = {
    "stfpm": ("configs/stfpm/stfpm_effnetlite0_sample.py", {}),
    "fastflow_spilled": (
        "configs/fastflow/fastflow_effnetlite0_sample.py",
        {"feature_cache.max_memory_mb": 0},  # every sample goes to the memory-mapped file
    ),
    "stfpm_tiled": (
        "configs/stfpm/stfpm_effnetlite0_sample.py",
        {"model.data_preprocessor.tiling": dict(tile_size=16, stride=16)},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cache_on_trains_exactly_like_cache_off(case, tiny_data, tmp_path):
    config, options = CASES[case]
    off = _cfg(config, tiny_data, tmp_path / "off", **options, **{"feature_cache.enabled": False})
    on = _cfg(config, tiny_data, tmp_path / "on", **options)
    losses_off, weights_off, info_off = _train(off)
    losses_on, weights_on, info_on = _train(on)
    assert info_off is None
    tiles = 4 if "tiled" in case else 1
    # Epoch 1 computes all 6 images' (tiles') features, epoch 2 reads all of them.
    assert info_on == dict(hits=6 * tiles, misses=6 * tiles)
    assert len(losses_on) == len(losses_off) == 4
    assert losses_on == losses_off  # bitwise
    assert weights_on.keys() == weights_off.keys()
    for key in weights_off:
        torch.testing.assert_close(weights_on[key], weights_off[key], atol=0, rtol=0)
    assert not list((tmp_path / "on").glob("**/feature_cache_*")), "spill files left behind"


def test_auto_is_off_with_a_random_transform_and_says_why(tiny_data, tmp_path):
    config = "configs/stfpm/stfpm_effnetlite0_sample.py"
    cfg = _cfg(config, tiny_data, tmp_path, epochs=1)
    cfg.train_dataloader.dataset.pipeline.insert(2, dict(type="RandomHorizontalFlip"))
    cfg.train_cfg.max_epochs = 2
    runner = AnomalyRunner.from_cfg(cfg)
    records = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    runner.logger.addHandler(handler)
    runner.logger.setLevel(logging.INFO)
    try:
        runner.train()
    finally:
        runner.logger.removeHandler(handler)
    lines = [r.getMessage() for r in records if "training caches" in r.getMessage()]
    assert len(lines) == 1
    assert "frozen features off (the train pipeline's RandomHorizontalFlip is random)" in lines[0]
    # The deterministic head is still decoded once.
    assert "decoded images on (LoadAnomalyImage, Resize" in lines[0]
    assert runner.message_hub.get_info("feature_cache") is None


@MODELS.register_module(force=True)
class _NoSplit(BaseAnomalyModel):
    """A trained model whose loss is not split into frozen features and the rest."""

    def __init__(self, data_preprocessor=None):
        super().__init__(data_preprocessor=data_preprocessor)
        self.conv = torch.nn.Conv2d(3, 3, 1)

    def loss(self, inputs, data_samples=None):
        return {"loss": (self.conv(inputs) - inputs).pow(2).mean()}

    def anomaly_outputs(self, inputs):
        maps = (self.conv(inputs) - inputs).pow(2).mean(1)
        return maps.flatten(1).amax(1), maps


def test_forcing_the_cache_on_a_model_without_the_split_is_one_line(tiny_data, tmp_path):
    cfg = _cfg("configs/stfpm/stfpm_effnetlite0_sample.py", tiny_data, tmp_path)
    cfg.model = dict(type="_NoSplit", data_preprocessor=cfg.model.data_preprocessor)
    cfg.feature_cache = dict(enabled=True)
    with pytest.raises(ConfigError, match="feature_cache.enabled=True but _NoSplit does not"):
        AnomalyRunner.from_cfg(cfg).train()


def test_cache_options_are_checked():
    defaults = dict(enabled="auto", max_memory_mb=1, spill_dir=None)
    assert cache_options("feature_cache", None, defaults) == defaults
    assert cache_options("feature_cache", False, defaults)["enabled"] is False
    with pytest.raises(ConfigError, match="feature_cache has no key 'max_memory'"):
        cache_options("feature_cache", dict(max_memory=3), defaults)
    with pytest.raises(ConfigError, match="feature_cache.enabled must be 'auto'"):
        cache_options("feature_cache", dict(enabled="yes"), defaults)
    with pytest.raises(ConfigError, match="max_memory_mb must be a number >= 0"):
        cache_options("feature_cache", dict(max_memory_mb=-1), defaults)


def test_frozen_feature_cache_reads_back_what_it_computed_in_memory_and_spilled(tmp_path):
    g = torch.Generator().manual_seed(0)
    images = {k: torch.randn(3, 4, 4, generator=g) for k in "abcde"}
    calls = []

    def compute(x):  # a "frozen network" with two levels; counts the rows it computes
        calls.append(len(x))
        return [x * 2, x.mean(1)]

    row_bytes = (3 * 4 * 4 + 4 * 4) * 4
    cache = FrozenFeatureCache(max_bytes=2 * row_bytes, spill_dir=tmp_path, chunk_rows=2)
    first = cache.features(list("abc"), torch.stack([images[k] for k in "abc"]), compute)
    assert calls == [3] and cache.spilled == 1  # a and b in memory, c past the limit
    again = cache.features(list("cdab"), torch.stack([images[k] for k in "cdab"]), compute)
    assert calls == [3, 1]  # only d was computed
    assert (cache.hits, cache.misses, len(cache), cache.spilled) == (3, 4, 4, 2)
    assert isinstance(again, list) and len(again) == 2
    torch.testing.assert_close(again[0][0], first[0][2], rtol=0, atol=0)  # c, from the file
    torch.testing.assert_close(again[1][2], first[1][0], rtol=0, atol=0)  # a, from memory
    torch.testing.assert_close(again[0][1], images["d"] * 2, rtol=0, atol=0)
    assert list(tmp_path.glob("feature_cache_*/*.npy"))
    cache.close()
    assert not list(tmp_path.glob("feature_cache_*"))


class _Counting:
    random = False

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, results):
        self.calls += 1
        results["img"] = (np.arange(12).reshape(2, 2, 3) + 10 * results["sample_idx"]).astype(
            np.uint8
        )
        return results


class _Compose:
    def __init__(self, transforms) -> None:
        self.transforms = transforms


def test_decode_cache_runs_the_deterministic_head_once_per_sample():
    head = _Counting()
    flip = TRANSFORMS.build(dict(type="RandomHorizontalFlip", prob=1.0))
    pack = TRANSFORMS.build(dict(type="PackAnomalyInputs"))
    assert first_random_transform([head, flip, pack]) == "RandomHorizontalFlip"
    assert first_random_transform([head, pack]) is None
    cache = DecodeCache(_Compose([head, flip, pack]), max_bytes=2 * 12)
    assert cache.head == [head] and cache.tail == [flip, pack]
    for _ in range(3):
        out = [cache({"sample_idx": i, "img_path": f"{i}.png"}) for i in range(3)]
    # Samples 0 and 1 fit in 24 bytes and were decoded once; sample 2 every time.
    assert head.calls == 3 + 1 + 1 and len(cache) == 2
    # Flipped: pixel (0, 0) is the head's pixel (0, 1), whose first channel is 3 + 10 i.
    assert [int(o["inputs"][0, 0, 0]) for o in out] == [3, 13, 23]
    assert out[0]["data_samples"].img_path == "0.png"
    # The flip changed the copy it was given, never the cached array.
    assert [int(cache._store[i]["img"][0, 0, 0]) for i in (0, 1)] == [0, 10]


def _split_sample_configs() -> list[str]:
    """Every ``*_sample`` config whose model splits its loss (new methods join by themselves)."""
    from adtool.apis.config_index import list_configs

    found = []
    for path in list_configs():
        if not path.stem.endswith("_sample"):
            continue
        model_type = load_config(path).get("model", {}).get("type")
        cls = MODELS.get(model_type) if isinstance(model_type, str) else None
        if isinstance(cls, type) and issubclass(cls, BaseAnomalyModel):
            if cls.splits_frozen_features():
                found.append(path.stem)
    return found


SPLIT_CONFIGS = _split_sample_configs()


def test_the_seven_frozen_network_methods_split_their_loss():
    types = {load_config(c).model.type for c in SPLIT_CONFIGS}
    assert types >= {"STFPM", "FastFlow", "ReverseDistillation", "CFlow", "CSFlow", "UFlow"}
    assert "UniNet" in types


@pytest.mark.parametrize("config", SPLIT_CONFIGS)
def test_cached_features_give_the_uncached_loss_and_gradients(config, tmp_path):
    cfg = load_config(config)
    _random_backbones(cfg.model)
    size = 32 if "csflow" not in config else 64  # CS-Flow's third scale needs >= 64 px
    if "input_size" in cfg.model:
        cfg.model["input_size"] = size
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.train()
    assert model.feature_cache_refusal() is None
    inputs = torch.randn(3, 3, size, size)
    samples = [AnomalyDataSample(metainfo=dict(img_path=f"{i}.png")) for i in range(3)]

    def step():
        model.zero_grad()
        torch.manual_seed(1)  # CFlow samples fibres
        loss = model(inputs, samples, mode="loss")["loss"]
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        return loss.detach(), grads

    plain = step()
    model.feature_cache = FrozenFeatureCache(max_bytes=1 << 30)
    computed, cached = step(), step()
    assert model.feature_cache.hits == 3 and model.feature_cache.misses == 3
    for loss, grads in (computed, cached):
        assert torch.equal(loss, plain[0])
        assert len(grads) == len(plain[1]) > 0
        assert all(torch.equal(a, b) for a, b in zip(grads, plain[1]))


@HOOKS.register_module(force=True)
class _RecordValScores(Hook):
    """Keeps every validation's scores by image path, and the cache each one saw."""

    def __init__(self) -> None:
        self.scores: list[dict[str, float]] = []
        self.caches: list[object] = []

    def before_val_epoch(self, runner) -> None:
        self.scores.append({})

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.caches.append(runner.model.eval_feature_cache)
        for sample in outputs:
            self.scores[-1][sample.img_path] = float(sample.pred_score)


VAL_CASES = {
    "stfpm": "configs/stfpm/stfpm_effnetlite0_sample.py",
    "fastflow": "configs/fastflow/fastflow_effnetlite0_sample.py",
    "reverse_distillation": (
        "configs/reverse_distillation/reverse_distillation_effnetlite0_sample.py"
    ),
}


def _val_cfg(config, data_root, work_dir, **options):
    cfg = _cfg(config, data_root, work_dir, epochs=3, **options)
    cfg.train_cfg.val_interval = 1
    cfg.val_dataloader = load_config(config).val_dataloader
    cfg.val_dataloader.dataset.data_root = str(data_root)
    cfg.val_dataloader.dataset.category = "tiles"
    for step in cfg.val_dataloader.dataset.pipeline:
        if step["type"] == "Resize":
            step["size"] = 32
    cfg.val_cfg = dict(type="AnomalyValLoop")
    cfg.val_evaluator = dict(type="AnomalyMetric")
    cfg.custom_hooks = [dict(type="_RecordValScores")]
    return cfg


def test_validation_cache_gives_exactly_the_uncached_scores(tiny_data, tmp_path):
    config = VAL_CASES["stfpm"]
    off = _val_cfg(config, tiny_data, tmp_path / "off", **{"feature_cache.enabled": False})
    on = _val_cfg(config, tiny_data, tmp_path / "on")
    runs = {}
    for name, cfg in (("off", off), ("on", on)):
        runner = AnomalyRunner.from_cfg(cfg)
        runner.train()
        hook = next(h for h in runner.hooks if isinstance(h, _RecordValScores))
        runs[name] = (hook, runner.message_hub.get_info("eval_feature_cache"))
        assert runner.model.eval_feature_cache is None  # not left on for the test
    (hook_off, info_off), (hook_on, info_on) = runs["off"], runs["on"]
    n_val = len(hook_on.scores[0])
    assert n_val == 3 + 2 * 3  # 3 good + 2 per defect type of the tiles category
    assert info_off is None and all(c is None for c in hook_off.caches)
    # The first validation computes every image's frozen features, the other two read them.
    assert info_on == dict(hits=2 * n_val, misses=n_val)
    assert all(c is not None for c in hook_on.caches)
    assert len(hook_on.scores) == len(hook_off.scores) == 3
    assert hook_on.scores == hook_off.scores  # bitwise, every image, every epoch
    # The student changes between epochs, so equal scores are not equal by accident.
    assert hook_on.scores[0] != hook_on.scores[2]


def test_trained_timm_backbone_runs_channels_last_and_matches_contiguous():
    from adtool.models.backbones.timm_backbone import TimmBackbone

    torch.manual_seed(0)
    common = dict(arch="tf_efficientnet_lite0", out_indices=(1, 2, 3), weights=None)
    fast = TimmBackbone(frozen=False, **common)
    plain = TimmBackbone(frozen=False, train_memory_format="contiguous", **common)
    plain.load_state_dict(fast.state_dict())
    frozen = TimmBackbone(frozen=True, **common)
    conv = fast.model.conv_stem.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert plain.model.conv_stem.weight.is_contiguous()
    assert frozen.model.conv_stem.weight.is_contiguous()  # a frozen one is left as loaded
    x = torch.randn(2, 3, 32, 32)
    fast.train(), plain.train()
    out_fast, out_plain = fast(x), plain(x)
    assert out_fast[0].is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(out_fast, out_plain):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)  # float rounding only
    sum(o.square().mean() for o in out_fast).backward()
    sum(o.square().mean() for o in out_plain).backward()
    # Summed in another order: equal up to rounding, which a wrong layout would exceed.
    grad_fast, grad_plain = fast.model.conv_stem.weight.grad, plain.model.conv_stem.weight.grad
    assert float((grad_fast - grad_plain).norm() / grad_plain.norm()) < 1e-3
    with pytest.raises(ConfigError, match="train_memory_format must be one of"):
        TimmBackbone(frozen=False, train_memory_format="nhwc", **common)


@pytest.mark.parametrize("case", sorted(VAL_CASES))
def test_cached_eval_features_give_the_uncached_outputs(case):
    cfg = load_config(VAL_CASES[case])
    _random_backbones(cfg.model)
    if "input_size" in cfg.model:
        cfg.model["input_size"] = 32
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.eval()
    assert model.splits_eval_features()
    inputs = torch.randn(3, 3, 32, 32)

    def samples():
        return [AnomalyDataSample(metainfo=dict(img_path=f"{i}.png")) for i in range(3)]

    with torch.no_grad():
        scores, maps = model.anomaly_outputs(inputs)
        model.eval_feature_cache = FrozenFeatureCache(max_bytes=1 << 30)
        for _ in range(2):  # computed, then read back
            got = model.predict(inputs, samples())
            assert torch.equal(torch.stack([s.pred_score for s in got]), scores)
            assert torch.equal(torch.stack([s.anomaly_map for s in got]), maps)
        model.predict_maps = False
        got = model.predict(inputs, samples())
    assert torch.equal(torch.stack([s.pred_score for s in got]), scores)
    assert "anomaly_map" not in got[0]
    assert model.eval_feature_cache.hits == 6 and model.eval_feature_cache.misses == 3
