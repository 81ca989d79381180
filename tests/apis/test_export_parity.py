"""Every exportable anomaly method, exported to ONNX, gives PyTorch's scores, maps and labels.

Parametrised over ``list_configs()``: one config per model folder (the cheapest, as the
integration test's reload check picks it), since the configs of one method share its
graph and differ only in backbone and sizes. Each model is built as the integration test
builds it (random backbone weights, 64 px), fitted on tiny sample data when it is a
memory bank (or given its ``before_train`` / ``after_train`` passes), and calibrated with a
threshold and min/max statistics, so that every output of the graph exists.

Tolerances (float32 on both sides): map max abs error <= 1e-3 x the map's range, score max
abs error <= 1e-3 x the scores' range, and the scores' order (hence Spearman's rank
correlation 1.0) and every label the same. A method whose class says
``exportable = False`` must fail with one line naming it and the reason.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from integration_helpers import tiny
from mmengine.config import Config
from mmengine.runner import Runner

from adtool.apis.config_index import list_configs, one_config_per_method
from adtool.deploy import OnnxInferencer, export_blocker, export_onnx
from adtool.errors import ConfigError
from adtool.models.anomaly.base import BaseAnomalyModel, MemoryBankModel
from adtool.registry import MODELS

pytest.importorskip("onnxruntime")

MAP_TOL = 1e-3  # x map range
SCORE_TOL = 1e-3  # x score range


def _tolerance(values: np.ndarray, relative: float) -> float:
    """``relative`` x the values' range; of their magnitude when the range is a rounding
    error (a random-weight DRAEM gives four scores equal to 7 digits)."""
    scale = max(float(np.ptp(values)), 1e-3 * float(np.abs(values).max()), 1e-12)
    return relative * scale


CONFIGS = sorted(one_config_per_method().values())


@pytest.fixture(scope="module")
def parity_data(tmp_path_factory):
    """One category at 64 px: 8 train images (DFKDE's PCA needs more than 4), 6 test."""
    from adtool.datasets import make_sample_dataset

    root = tmp_path_factory.mktemp("parity_sample")
    return make_sample_dataset(
        root, seed=1, size=64, n_train=8, n_test_good=2, n_test_defect=2, categories=["tiles"]
    )


def _category(cfg: Config, category: str) -> Config:
    for key in ("train_dataloader", "test_dataloader"):
        cfg[key]["dataset"]["category"] = category
        cfg[key]["num_workers"] = 0
        cfg[key]["persistent_workers"] = False
    return cfg


def _lifecycle(model, name: str) -> bool:
    return not getattr(getattr(type(model), name), "lifecycle_noop", False)


def build_fitted(config: str, data_root) -> tuple[BaseAnomalyModel, Config, dict]:
    """A tiny model of ``config``, fitted or given its train passes, calibrated; and one
    test batch."""
    cfg = _category(tiny(config, data_root), "tiles")
    cfg.val_dataloader = None
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    train_loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    test_loader = Runner.build_dataloader(cfg.test_dataloader, seed=0)
    model.eval()
    if _lifecycle(model, "before_train"):
        model.before_train(train_loader)
    if isinstance(model, MemoryBankModel):
        for batch in train_loader:
            model.fit_step(batch)
        model.fit()
    if _lifecycle(model, "after_train"):
        model.after_train(train_loader)
    model.eval()
    batch = next(iter(test_loader))
    with torch.no_grad():
        samples = model.test_step(batch)
    scores = torch.stack([s.pred_score for s in samples]).float()
    maps = [s.get("anomaly_map") for s in samples]
    maps = None if maps[0] is None else torch.stack(maps).float()
    # Thresholds halfway between two scores: a label can flip only on a score error
    # larger than half their gap, which the score tolerance already bounds.
    ordered = scores.sort().values
    middle = len(ordered) // 2
    model.postprocessor.set_thresholds(
        {"f1_percentile": float(ordered[middle - 1 : middle + 1].mean())},
        "f1_percentile",
        None if maps is None else float(maps.mean()),
    )
    # Statistics at least the tolerance's scale apart, so that a normalised value errs by at
    # most the relative tolerance (a near-constant random model would amplify rounding).
    low = float(scores.min())
    map_low = None if maps is None else float(maps.min())
    model.postprocessor.set_normalization(
        low,
        low + _tolerance(scores.numpy(), 1.0),
        map_low,
        None if maps is None else map_low + _tolerance(maps.numpy(), 1.0),
    )
    return model, cfg, {"batch": batch, "scores": scores, "maps": maps}


def _exportable(config: str) -> bool:
    cfg = Config.fromfile(str(next(p for p in list_configs() if p.stem == config)))
    return getattr(MODELS.get(cfg.model.type), "exportable", True)


@pytest.mark.parametrize("config", [c for c in CONFIGS if _exportable(c)])
def test_onnx_matches_pytorch(config, parity_data, tmp_path):
    model, cfg, ref = build_fitted(config, parity_data)
    out = tmp_path / f"{config}.onnx"
    meta = export_onnx(model, cfg, out, dynamic_batch=True, config_name=config)
    images = torch.stack(ref["batch"]["inputs"]).numpy()
    assert images.dtype == np.uint8
    got = OnnxInferencer(out).run(images)

    scores = ref["scores"].numpy()
    tol = _tolerance(scores, SCORE_TOL)
    assert np.abs(got["score"] - scores).max() <= tol, config
    # Same order for every pair of images whose scores differ by more than the tolerance.
    gap = scores[:, None] - scores[None, :]
    clear = np.abs(gap) > 2 * tol
    got_gap = got["score"][:, None] - got["score"][None, :]
    assert (np.sign(gap) == np.sign(got_gap))[clear].all(), config
    post = model.postprocessor
    # Labels agree wherever the score is clear of the threshold by more than the tolerance.
    clear = np.abs(scores - post.image_threshold) > tol
    expected = post.labels(ref["scores"]).numpy()
    np.testing.assert_array_equal(got["label"][clear], expected[clear])
    np.testing.assert_allclose(
        got["score_normalized"], post.normalize_scores(ref["scores"]).numpy(), atol=2 * SCORE_TOL
    )
    if ref["maps"] is None:
        assert "anomaly_map" not in meta["outputs"]
        return
    maps = ref["maps"].numpy()
    assert got["anomaly_map"].shape == maps.shape
    assert np.abs(got["anomaly_map"] - maps).max() <= _tolerance(maps, MAP_TOL), config
    np.testing.assert_allclose(
        got["anomaly_map_normalized"], post.normalize_maps(ref["maps"]).numpy(), atol=2 * MAP_TOL
    )


@pytest.mark.parametrize("config", [c for c in CONFIGS if not _exportable(c)])
def test_unexportable_model_fails_in_one_line(config, parity_data, tmp_path):
    cfg = _category(tiny(config, parity_data), "tiles")
    model = MODELS.build(cfg.model).eval()
    out = tmp_path / "x.onnx"
    with pytest.raises(ConfigError) as err:
        export_onnx(model, cfg, out)
    message = str(err.value)
    assert "\n" not in message and cfg.model.type in message
    assert export_blocker(model) in message
    assert not out.exists() and not list(tmp_path.iterdir())
