"""tools/export.py and tools/infer.py --backend onnxruntime on a trained tiny PatchCore:
the ONNX file alone gives the PyTorch path's predictions.csv and overlays."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from adtool.apis import load_config, run_category
from adtool.apis.checkpoints import load_model
from adtool.cli import app
from adtool.deploy import METADATA_KEY, OnnxInferencer, export_onnx
from adtool.errors import ConfigError, DataError
from adtool.models.anomaly.patchcore.model import PatchCore

pytest.importorskip("onnxruntime")

CONFIG = "patchcore_effnetlite0_sample"
TINY = [
    "model.backbone.weights=None",
    "train_dataloader.dataset.pipeline.1.size=64",
    "test_dataloader.dataset.pipeline.2.size=64",
]


def tiny(data_root):
    cfg = load_config(CONFIG, TINY)
    for key in ("train_dataloader", "test_dataloader"):
        cfg[key]["batch_size"] = 4
        cfg[key]["dataset"]["data_root"] = str(data_root)
    return cfg


@pytest.fixture(scope="module")
def exported(tiny_data, tmp_path_factory):
    """A trained tiny PatchCore, its checkpoint exported with tools/export.py's command."""
    work = tmp_path_factory.mktemp("export")
    cfg = tiny(tiny_data)
    results = run_category(cfg, "tiles", work / "train")
    checkpoint = work / "train" / "epoch_1.pth"
    out = work / "model.onnx"
    args = ["export", CONFIG, str(checkpoint), "--format", "onnx", "--out", str(out)]
    args += ["--dynamic-batch", *sum((["--cfg-options", o] for o in TINY), [])]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert str(out) in res.output and "f1_percentile" in res.output
    return cfg, checkpoint, out, results


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_metadata_holds_what_deployment_needs(exported):
    cfg, _, out, results = exported
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    meta = json.loads(props[METADATA_KEY])
    assert meta["model"] == "PatchCore" and meta["config_name"] == CONFIG
    assert meta["input_size"] == [64, 64] and meta["input_dtype"] == "uint8"
    assert meta["mean"] == pytest.approx(list(cfg.model.data_preprocessor.mean))
    assert meta["std"] == pytest.approx(list(cfg.model.data_preprocessor.std))
    assert meta["threshold_name"] == results["confusion"]["threshold"]
    assert meta["threshold_value"] == pytest.approx(results["confusion"]["threshold_value"])
    assert meta["outputs"] == [
        "score",
        "score_normalized",
        "label",
        "anomaly_map",
        "anomaly_map_normalized",
    ]
    # The graph's outputs are the metadata's, and the batch axis is free.
    graph = onnx.load(str(out)).graph
    assert [o.name for o in graph.output] == meta["outputs"]
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param
    assert not list(out.parent.glob("*.tmp"))


def test_infer_onnxruntime_gives_the_pytorch_predictions(exported, tiny_data, tmp_path):
    cfg, checkpoint, out, _ = exported
    images = tiny_data / "tiles" / "test"
    runner = CliRunner()
    options = sum((["--cfg-options", o] for o in TINY), [])
    torch_out, onnx_out = tmp_path / "torch", tmp_path / "onnx"
    res = runner.invoke(
        app, ["infer", CONFIG, str(checkpoint), str(images), "--out", str(torch_out), *options]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        [
            "infer",
            CONFIG,
            str(out),
            str(images),
            "--out",
            str(onnx_out),
            "--backend",
            "onnxruntime",
            *options,
        ],
    )
    assert res.exit_code == 0, res.output
    a, b = read_csv(torch_out / "predictions.csv"), read_csv(onnx_out / "predictions.csv")
    assert len(a) == len(b) == 9
    scores_a = np.array([float(r["score"]) for r in a])
    scores_b = np.array([float(r["score"]) for r in b])
    tolerance = 1e-3 * np.ptp(scores_a)
    assert np.abs(scores_a - scores_b).max() <= tolerance
    for ra, rb in zip(a, b):
        assert ra["path"] == rb["path"]
        # The test's threshold is one of the test scores: an image at it may flip with a
        # rounding-level difference (the optimised PyTorch path folds batch-norm).
        if abs(float(ra["score"]) - float(ra["threshold_value"])) > tolerance:
            assert ra["label"] == rb["label"]
        assert (ra["threshold_name"], ra["threshold_value"]) == (
            rb["threshold_name"],
            rb["threshold_value"],
        )
        assert Path(ra["overlay"]).relative_to(torch_out) == Path(rb["overlay"]).relative_to(
            onnx_out
        )
        assert Path(rb["overlay"]).is_file()


def test_graph_labels_and_normalises_like_the_post_processor(exported):
    cfg, checkpoint, out, results = exported
    model, _ = load_model(cfg, checkpoint)
    post = model.postprocessor
    assert post.has_normalization  # the test run stored min/max of its scores and maps
    images = torch.randint(
        0, 256, (5, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(3)
    )
    with torch.no_grad():
        scores, maps = model.outputs(model.data_preprocessor({"inputs": list(images)})["inputs"])
    got = OnnxInferencer(out, threads=1).run(images)
    np.testing.assert_allclose(got["score"], scores.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(got["label"], post.labels(scores).numpy())
    np.testing.assert_allclose(
        got["score_normalized"], post.normalize_scores(scores).numpy(), atol=1e-4
    )
    np.testing.assert_allclose(
        got["anomaly_map_normalized"], post.normalize_maps(maps).numpy(), atol=1e-4
    )
    # float 0..255 input to the uint8 graph: rounded, the same result.
    again = OnnxInferencer(out).run(images.float().numpy() + 0.2)
    np.testing.assert_array_equal(again["score"], got["score"])


def test_fixed_batch_fp16_weights_and_float_input(exported, tmp_path):
    cfg, checkpoint, _, _ = exported
    model, _ = load_model(cfg, checkpoint)
    images = torch.randint(
        0, 256, (3, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(4)
    )
    with torch.no_grad():
        scores, maps = model.outputs(model.data_preprocessor({"inputs": list(images)})["inputs"])
    # A fixed batch of 2 runs 3 images (the last batch padded).
    fixed = tmp_path / "fixed.onnx"
    meta = export_onnx(model, cfg, fixed, batch_size=2, input_dtype="float32")
    assert meta["batch_size"] == 2 and meta["input_dtype"] == "float32"
    got = OnnxInferencer(fixed).run(images)
    np.testing.assert_allclose(got["score"], scores.numpy(), rtol=1e-4, atol=1e-5)
    assert got["anomaly_map"].shape == (3, 64, 64)
    # fp16: float16 weights (half the file), float32 arithmetic and I/O; weights rounded
    # to 11 significant bits move scores by about 0.5 % of their range (measured with
    # real weights, docs/benchmarks.md), so 2 % here.
    full, half = tmp_path / "full.onnx", tmp_path / "half.onnx"
    export_onnx(model, cfg, full, dynamic_batch=True)
    meta = export_onnx(model, cfg, half, dynamic_batch=True, fp16=True)
    assert meta["fp16"] is True
    assert half.stat().st_size < 0.6 * full.stat().st_size
    a, b = OnnxInferencer(full).run(images), OnnxInferencer(half).run(images)
    assert b["score"].dtype == b["anomaly_map"].dtype == np.float32
    assert np.abs(a["score"] - b["score"]).max() <= 2e-2 * np.ptp(a["score"])
    assert np.abs(a["anomaly_map"] - b["anomaly_map"]).max() <= 2e-2 * np.ptp(a["anomaly_map"])


def test_errors_are_one_line(exported, tiny_data, tmp_path):
    cfg, checkpoint, out, _ = exported
    model, _ = load_model(cfg, checkpoint)

    class Blocked(PatchCore):
        exportable = False
        export_blocker = "its k-NN search runs in faiss"

    model.__class__ = Blocked
    target = tmp_path / "blocked.onnx"
    with pytest.raises(
        ConfigError, match=r"^Blocked cannot be exported to ONNX: its k-NN search runs in faiss$"
    ):
        export_onnx(model, cfg, target)
    assert not list(tmp_path.iterdir())
    with pytest.raises(DataError, match="takes 64x64 images, got 32x32"):
        OnnxInferencer(out).run(np.zeros((1, 3, 32, 32), np.uint8))
    with pytest.raises(DataError, match="not found"):
        OnnxInferencer(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(DataError, match="not a loadable ONNX file"):
        OnnxInferencer(bad)
    # The wrong config for the file, and an input size PatchCore's graph does not fix
    # but the CLI checks against the model's: one line, exit status 2.
    res = CliRunner().invoke(
        app,
        [
            "infer",
            "padim_effnetlite0_mvtec",
            str(out),
            str(tiny_data / "tiles" / "test"),
            "--backend",
            "onnxruntime",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 2 and "holds a PatchCore model" in res.output
    res = CliRunner().invoke(app, ["export", CONFIG, str(checkpoint), "--format", "tflite"])
    assert res.exit_code == 2


# OpenVINO reads the same .onnx file; float32 on both runtimes, different kernels.
OPENVINO_TOL = 1e-4  # x the range of the scores / of the maps


def test_openvino_gives_the_onnxruntime_outputs(exported):
    pytest.importorskip("openvino")
    from adtool.deploy import OpenVinoInferencer

    _, _, out, _ = exported
    images = torch.randint(
        0, 256, (5, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(5)
    )
    ort = OnnxInferencer(out, threads=1)
    ov = OpenVinoInferencer(out, threads=1)
    assert ov.metadata == ort.metadata and ov.outputs == ort.outputs
    assert ov.thresholds == ort.thresholds and ov.config().model.type == "PatchCore"
    a, b = ort.run(images), ov.run(images)
    assert list(b) == ort.outputs
    for name in ("score", "anomaly_map"):
        assert b[name].shape == a[name].shape and b[name].dtype == np.float32
        tol = OPENVINO_TOL * float(np.ptp(a[name]))
        assert np.abs(b[name] - a[name]).max() <= tol, name
    for name in ("score_normalized", "anomaly_map_normalized"):
        np.testing.assert_allclose(b[name], a[name], atol=OPENVINO_TOL)
    assert b["label"].dtype == np.bool_
    np.testing.assert_array_equal(b["label"], a["label"])
    # One image and a batch of 3 through the same compiled model.
    np.testing.assert_allclose(ov.run(images[2])["score"], b["score"][2:3], rtol=1e-5)


def test_infer_openvino_writes_the_onnxruntime_predictions(exported, tiny_data, tmp_path):
    pytest.importorskip("openvino")
    _, _, out, _ = exported
    images = tiny_data / "tiles" / "test"
    options = sum((["--cfg-options", o] for o in TINY), [])
    written = {}
    for backend in ("onnxruntime", "openvino"):
        folder = tmp_path / backend
        args = ["infer", CONFIG, str(out), str(images), "--out", str(folder)]
        res = CliRunner().invoke(app, [*args, "--backend", backend, *options])
        assert res.exit_code == 0, res.output
        written[backend] = (folder, read_csv(folder / "predictions.csv"))
    (ort_dir, a), (ov_dir, b) = written["onnxruntime"], written["openvino"]
    assert len(a) == len(b) == 9
    scores_a = np.array([float(r["score"]) for r in a])
    scores_b = np.array([float(r["score"]) for r in b])
    assert np.abs(scores_a - scores_b).max() <= OPENVINO_TOL * np.ptp(scores_a)
    for ra, rb in zip(a, b):
        assert ra["path"] == rb["path"] and ra["status"] == rb["status"] == "ok"
        assert (ra["label"], ra["threshold_name"], ra["threshold_value"]) == (
            rb["label"],
            rb["threshold_name"],
            rb["threshold_value"],
        )
        overlay = Path(rb["overlay"])
        assert overlay.relative_to(ov_dir) == Path(ra["overlay"]).relative_to(ort_dir)
        assert overlay.is_file()


def test_dynamic_batch_graph_keeps_every_query_of_a_chunked_search(exported, tmp_path, monkeypatch):
    # PatchCore's k-NN runs in blocks of MAX_CHUNK queries; traced at batch 1, a block's
    # slice would fix the graph's number of queries and drop the rows of a larger batch.
    from adtool.models.components import knn

    cfg, checkpoint, _, _ = exported
    model, _ = load_model(cfg, checkpoint)
    monkeypatch.setattr(knn, "MAX_CHUNK", 16)  # 64 patches per 64 px image: 4 blocks
    out = tmp_path / "chunked.onnx"
    export_onnx(model, cfg, out, dynamic_batch=True)
    images = torch.randint(
        0, 256, (3, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(6)
    )
    with torch.no_grad():
        scores, maps = model.outputs(model.data_preprocessor({"inputs": list(images)})["inputs"])
    got = OnnxInferencer(out).run(images)
    np.testing.assert_allclose(got["score"], scores.numpy(), rtol=1e-4, atol=1e-5)
    assert np.abs(got["anomaly_map"] - maps.numpy()).max() <= 1e-3 * float(np.ptp(maps.numpy()))
