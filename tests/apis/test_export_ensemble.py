"""An Ensemble config exports like any model: tools/export.py with the ensemble config and
its checkpoint gives one graph whose scores, maps and labels are the PyTorch ensemble's.

Two fit-once members with random weights on the tiny sample data: PatchCore at 64 px and
PaDiM at 48 px (the ensemble resizes its 64 px input for PaDiM with an antialiased
bilinear resize, exported as two constant matrix products), fitted and tested through the
run path, then the ensemble's statistics fitted and its thresholds measured the same way.
Tolerances as tests/apis/test_export_parity.py: map max abs error <= 1e-3 x the map range,
scores <= 1e-3 x the score range, labels equal where the score is clear of the threshold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from adtool.apis import load_config, run_category
from adtool.apis.checkpoints import load_model
from adtool.apis.ensemble import ensemble_config_text
from adtool.cli import app
from adtool.deploy import OnnxInferencer, export_onnx
from adtool.errors import ConfigError
from adtool.registry import DATASETS

pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[2]
MEMBERS = (
    ("patchcore/patchcore_effnetlite0_sample.py", 64),
    ("padim/padim_effnetlite0_mvtec.py", 48),
)
CATEGORY = "tiles"
TOL = 1e-3


def _member_config(folder: Path, base: str, size: int) -> Path:
    path = folder / f"{Path(base).stem}.py"
    path.write_text(
        f'_base_ = "{(REPO / "configs" / base).as_posix()}"\n'
        "model = dict(backbone=dict(weights=None))\n"
        "train_pipeline = [dict(type='LoadAnomalyImage'), "
        f"dict(type='Resize', size={size}), dict(type='PackAnomalyInputs')]\n"
        "test_pipeline = [dict(type='LoadAnomalyImage'), dict(type='LoadAnomalyMask'), "
        f"dict(type='Resize', size={size}), dict(type='PackAnomalyInputs')]\n"
        "train_dataloader = dict(batch_size=4, dataset=dict(type='SampleDataset', "
        "pipeline=train_pipeline))\n"
        "test_dataloader = dict(batch_size=4, dataset=dict(type='SampleDataset', "
        "pipeline=test_pipeline))\n"
    )
    return path


def _on_data(cfg, data_root):
    for key in ("train_dataloader", "test_dataloader"):
        cfg[key]["dataset"]["data_root"] = str(data_root)
        cfg[key]["dataset"]["category"] = CATEGORY
        cfg[key]["num_workers"] = 0
        cfg[key]["persistent_workers"] = False
    return cfg


@pytest.fixture(scope="module")
def ensemble(tiny_data, tmp_path_factory):
    """(ensemble config path, its checkpoint): members fitted and tested, then the
    ensemble fitted (training-image statistics) and tested (thresholds)."""
    folder = tmp_path_factory.mktemp("ens_export")
    members = []
    for base, size in MEMBERS:
        path = _member_config(folder, base, size)
        cfg = _on_data(load_config(path), tiny_data)
        run_category(cfg, CATEGORY, folder / path.stem, report=False)
        members.append(
            {
                "name": path.stem,
                "config": str(path),
                "checkpoint": str(folder / path.stem / "epoch_1.pth"),
            }
        )
    config = folder / "ensemble_top2_mean.py"
    config.write_text(ensemble_config_text({CATEGORY: members}, "mean", None, 2))
    cfg = _on_data(load_config(config), tiny_data)
    run_category(cfg, CATEGORY, folder / "ensemble", report=False)
    return config, folder / "ensemble" / "epoch_1.pth", tiny_data


def _test_images(cfg, data_root) -> torch.Tensor:
    spec = _on_data(cfg, data_root)["test_dataloader"]["dataset"].to_dict()
    dataset = DATASETS.build(spec)
    return torch.stack([dataset[i]["inputs"] for i in range(len(dataset))])


@pytest.mark.parametrize("rule", ["mean", "rank"])
def test_exported_ensemble_matches_pytorch(ensemble, rule, tmp_path):
    config, checkpoint, data_root = ensemble
    out = tmp_path / f"ensemble_{rule}.onnx"
    # The checkpoint fits any rule (the config decides it): rank exercises the map ECDF.
    options = ["--cfg-options", f"model.rule={rule}"]
    args = ["export", str(config), str(checkpoint), "--out", str(out), "--dynamic-batch"]
    res = CliRunner().invoke(app, [*args, *options])
    assert res.exit_code == 0, res.output
    cfg = load_config(config, [f"model.rule={rule}"])
    model, _ = load_model(cfg, checkpoint)
    images = _test_images(cfg, data_root)
    assert images.dtype == torch.uint8 and tuple(images.shape[1:]) == (3, 64, 64)
    with torch.no_grad():
        scores, maps = model.outputs(model.data_preprocessor({"inputs": list(images)})["inputs"])
    scores, maps = scores.numpy(), maps.numpy()
    got = OnnxInferencer(out, threads=1).run(images)
    assert got["anomaly_map"].shape == maps.shape == (len(images), 64, 64)
    score_tol = TOL * max(float(np.ptp(scores)), 1e-3 * float(np.abs(scores).max()))
    assert np.abs(got["score"] - scores).max() <= score_tol
    assert np.abs(got["anomaly_map"] - maps).max() <= TOL * max(float(np.ptp(maps)), 1e-6)
    post = model.postprocessor
    clear = np.abs(scores - post.image_threshold) > score_tol
    expected = post.labels(torch.from_numpy(scores)).numpy()
    np.testing.assert_array_equal(got["label"][clear], expected[clear])
    if rule == "rank":  # the ranks are not all saturated: the ECDF itself is compared
        assert 0 <= float(got["anomaly_map"].min()) < float(got["anomaly_map"].max()) <= 1


def test_an_unexportable_member_is_named_in_one_line(ensemble, tmp_path, monkeypatch):
    from adtool.models.anomaly.padim.model import PaDiM

    config, checkpoint, _ = ensemble
    monkeypatch.setattr(PaDiM, "exportable", False)
    monkeypatch.setattr(PaDiM, "export_blocker", "a test says so")
    cfg = load_config(config)
    model, _ = load_model(cfg, checkpoint)
    with pytest.raises(ConfigError) as err:
        export_onnx(model, cfg, tmp_path / "x.onnx")
    message = str(err.value)
    assert "\n" not in message and not (tmp_path / "x.onnx").exists()
    assert "Ensemble" in message and "padim_effnetlite0_mvtec (PaDiM)" in message
    assert "a test says so" in message
