"""tools/infer.py: scores as in the test run, labels at the threshold stored at test time."""

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from adtool.apis import load_config, run_category
from adtool.apis.checkpoints import load_model
from adtool.apis.inference import (
    META_KEY,
    choose_threshold,
    infer,
    list_inputs,
    load_thresholds,
)
from adtool.apis.thresholds import attach_thresholds, stored_thresholds
from adtool.cli import app, expand_cfg_options
from adtool.errors import ConfigError, DataError

CONFIG = "patchcore_effnetlite0_sample"
TINY = [
    "model.backbone.weights=None",
    "train_dataloader.dataset.pipeline.1.size=64",
    "test_dataloader.dataset.pipeline.2.size=64",
]


def tiny(data_root):
    """The real sample config with random weights and 64 px images (as test_integration)."""
    cfg = load_config(CONFIG, TINY)
    for key in ("train_dataloader", "test_dataloader"):
        cfg[key]["batch_size"] = 4
        cfg[key]["dataset"]["data_root"] = str(data_root)
    return cfg


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    work = tmp_path_factory.mktemp("train")
    cfg = tiny(tiny_data)
    results = run_category(cfg, "tiles", work)
    return cfg, work, results


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_checkpoint_meta_holds_the_test_thresholds(trained):
    _, work, results = trained
    meta = torch.load(work / "epoch_1.pth", weights_only=False)["meta"][META_KEY]
    assert meta["chosen"] == results["confusion"]["threshold"] == "f1_percentile"
    assert meta["value"] == results["confusion"]["threshold_value"]
    assert meta["values"] == {k: v["value"] for k, v in results["thresholds"].items()}
    assert meta["pixel_threshold"] == results["pixel"]["threshold"]
    assert (meta["model"], meta["config"], meta["category"]) == ("PatchCore", CONFIG, "tiles")
    assert Path(meta["checkpoint"]).resolve() == (work / "epoch_1.pth").resolve()
    stored = json.loads((work / "thresholds.json").read_text())
    assert stored["in_checkpoint_meta"] is True and stored["values"] == meta["values"]


def test_infer_folder_matches_test_scores(trained, tiny_data, tmp_path):
    cfg, work, results = trained
    out = tmp_path / "out"
    rows = infer(cfg, work / "epoch_1.pth", tiny_data / "tiles" / "test", out)
    tested = {Path(r["img_path"]).resolve(): r for r in read_csv(work / "scores.csv")}
    assert len(rows) == len(tested) == results["n_test"]
    value = results["confusion"]["threshold_value"]
    csv_rows = read_csv(out / "predictions.csv")
    assert [r["path"] for r in csv_rows] == [r["path"] for r in rows]
    assert [Path(r["path"]) for r in rows] == sorted(Path(r["path"]) for r in rows)
    for row, line in zip(rows, csv_rows):
        expected = float(tested[Path(row["path"]).resolve()]["score"])
        assert row["score"] == pytest.approx(expected, rel=1e-5)
        assert float(line["score"]) == pytest.approx(row["score"], rel=1e-8)
        assert row["label"] == int(row["score"] >= value) == int(line["label"])
        assert line["threshold_name"] == "f1_percentile"
        assert float(line["threshold_value"]) == pytest.approx(value, rel=1e-8)
        assert Path(row["overlay"]).is_file()
    # Overlays mirror the input folders.
    assert {Path(r["overlay"]).parent.name for r in rows} == {"good", "crack", "missing", "spot"}
    assert not list(out.glob("**/*.tmp"))


def test_external_checkpoint_is_not_modified(trained, tiny_data, tmp_path):
    cfg, work, _ = trained
    external = tmp_path / "mine" / "model.pth"
    external.parent.mkdir()
    shutil.copy(work / "epoch_1.pth", external)
    before = digest(external)
    results = run_category(cfg, "tiles", tmp_path / "test", checkpoint=str(external))
    assert digest(external) == before
    stored = json.loads((tmp_path / "test" / "thresholds.json").read_text())
    assert stored["in_checkpoint_meta"] is False
    assert stored["values"]["youden_j"] == results["thresholds"]["youden_j"]["value"]
    for source in ("thresholds.json", "results.json"):
        rows = infer(
            cfg,
            external,
            tiny_data / "tiles" / "test" / "good",
            tmp_path / source,
            "youden_j",
            thresholds_from=tmp_path / "test" / source,
        )
        value = results["thresholds"]["youden_j"]["value"]
        assert all(r["threshold_name"] == "youden_j" for r in rows)
        assert [r["label"] for r in rows] == [int(r["score"] >= value) for r in rows]


def test_threshold_choices_and_unlabelled_output(trained, tiny_data, tmp_path):
    cfg, work, _ = trained
    bare = tmp_path / "bare.pth"
    checkpoint = torch.load(work / "epoch_1.pth", weights_only=False)
    # No stored thresholds: neither in the meta nor in the post-processor's buffers (a
    # checkpoint written before the post-processor existed).
    del checkpoint["meta"][META_KEY]
    for key in [k for k in checkpoint["state_dict"] if k.startswith("postprocessor.")]:
        del checkpoint["state_dict"][key]
    torch.save(checkpoint, bare)
    # A grayscale image of another mode and a single file as input.
    gray = tmp_path / "gray.png"
    Image.open(next((tiny_data / "tiles" / "test" / "good").glob("*.png"))).convert("L").save(gray)
    rows = infer(cfg, bare, gray, tmp_path / "none")
    assert rows[0]["label"] is None and np.isfinite(rows[0]["score"])
    line = read_csv(tmp_path / "none" / "predictions.csv")[0]
    assert line["label"] == "" and line["threshold_name"] == ""
    rows = infer(cfg, bare, gray, tmp_path / "num", threshold=rows[0]["score"] - 1e-3)
    assert rows[0]["label"] == 1 and rows[0]["threshold_name"] == "value"
    with pytest.raises(ConfigError, match="no stored thresholds"):
        infer(cfg, bare, gray, tmp_path / "x", threshold="youden_j")
    other = tmp_path / "other.json"
    other.write_text(
        json.dumps({"model": "PaDiM", "chosen": "f1_uniform", "value": 1.0, "values": {}})
    )
    with pytest.raises(ConfigError, match="measured for PaDiM"):
        infer(cfg, bare, gray, tmp_path / "x", thresholds_from=other)
    with pytest.raises(ConfigError, match="unknown threshold 'median'"):
        choose_threshold({"values": {}}, "median")
    assert choose_threshold({"chosen": "f1_uniform", "value": 2.0}, None) == ("f1_uniform", 2.0)


def test_bad_inputs(tmp_path):
    with pytest.raises(DataError, match="not found"):
        list_inputs(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="not an image"):
        list_inputs(tmp_path / "notes.txt")
    with pytest.raises(DataError, match="no images"):
        list_inputs(tmp_path)
    (tmp_path / "a").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "a" / "x.png")
    (tmp_path / "a" / "out").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "a" / "out" / "overlay.png")
    assert list_inputs(tmp_path / "a", exclude=tmp_path / "a" / "out") == [tmp_path / "a" / "x.png"]
    with pytest.raises(DataError, match="holds no thresholds"):
        (tmp_path / "x.json").write_text("{}")
        load_thresholds(tmp_path / "x.json")


def _one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for needle in needles:
        assert needle in result.output


def test_cli_infer_and_its_errors(trained, tiny_data, tmp_path):
    _, work, _ = trained
    images = tiny_data / "tiles" / "test" / "crack"
    base = ["infer", CONFIG]
    tail = ["--out", str(tmp_path / "out"), "--cfg-options", *TINY]
    runner = CliRunner()
    result = runner.invoke(
        app, expand_cfg_options([*base, str(work / "epoch_1.pth"), str(images), *tail])
    )
    assert result.exit_code == 0, result.output
    assert "2 images" in result.output and "f1_percentile" in result.output
    assert len(read_csv(tmp_path / "out" / "predictions.csv")) == 2
    result = runner.invoke(
        app, expand_cfg_options([*base, str(work / "epoch_1.pth"), str(tmp_path / "no"), *tail])
    )
    _one_line_error(result, str(tmp_path / "no"))
    result = runner.invoke(
        app, expand_cfg_options([*base, str(tmp_path / "missing.pth"), str(images), *tail])
    )
    _one_line_error(result, "missing.pth")


# ------------------------------------------------ issue 11 item 9: unreadable images


def _folder_with_a_bad_image(tiny_data, tmp_path) -> Path:
    folder = tmp_path / "images"
    shutil.copytree(tiny_data / "tiles" / "test" / "good", folder)
    (folder / "bad.png").write_bytes(b"not a png at all")
    return folder


def test_unreadable_image_is_reported_and_the_others_scored(trained, tiny_data, tmp_path):
    cfg, work, _ = trained
    folder = _folder_with_a_bad_image(tiny_data, tmp_path)
    rows = infer(cfg, work / "epoch_1.pth", folder, tmp_path / "out")
    clean = infer(cfg, work / "epoch_1.pth", tiny_data / "tiles" / "test" / "good", tmp_path / "c")
    bad = [r for r in rows if Path(r["path"]).name == "bad.png"]
    assert len(bad) == 1 and bad[0]["score"] is None and bad[0]["label"] is None
    assert bad[0]["status"].startswith("error: ") and "bad.png" in bad[0]["status"]
    good = [r for r in rows if r is not bad[0]]
    assert [Path(r["path"]).name for r in good] == [Path(r["path"]).name for r in clean]
    assert [r["score"] for r in good] == pytest.approx([r["score"] for r in clean], rel=1e-6)
    assert {r["status"] for r in good} == {"ok"}
    lines = read_csv(tmp_path / "out" / "predictions.csv")
    assert len(lines) == len(rows)
    line = next(r for r in lines if r["path"].endswith("bad.png"))
    assert line["score"] == "" and line["status"].startswith("error: ")


def test_cli_unreadable_image_warns_once_and_exits_nonzero(trained, tiny_data, tmp_path):
    _, work, _ = trained
    folder = _folder_with_a_bad_image(tiny_data, tmp_path)
    args = ["infer", CONFIG, str(work / "epoch_1.pth"), str(folder), "--cfg-options", *TINY]
    out = CliRunner().invoke(app, expand_cfg_options([*args, "--out", str(tmp_path / "o")]))
    assert out.exit_code == 1
    warnings = [line for line in out.output.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "bad.png" in warnings[0] and "Traceback" not in out.output
    assert (tmp_path / "o" / "predictions.csv").is_file()
    strict = [*args, "--out", str(tmp_path / "s"), "--strict"]
    out = CliRunner().invoke(app, expand_cfg_options(strict))
    assert out.exit_code == 2 and "bad.png" in out.output and "Traceback" not in out.output
    assert not (tmp_path / "s" / "predictions.csv").exists()


# ------------------------------------- thresholds travel with the model (issue 10 item 4)


class _ToyPostProcessor(torch.nn.Module):
    """The contract of adtool.models.postprocess.PostProcessor's thresholds part."""

    NAMES = ("f1_percentile", "f1_uniform", "youden_j", "percentile_95")

    def __init__(self):
        super().__init__()
        self.register_buffer("values", torch.full((4,), float("nan")))
        self.register_buffer("chosen", torch.tensor(-1))
        self.register_buffer("pixel", torch.tensor(float("nan")))

    def set_thresholds(self, values, chosen, pixel=None):
        for i, name in enumerate(self.NAMES):
            self.values[i] = float("nan") if values.get(name) is None else values[name]
        self.chosen.fill_(self.NAMES.index(chosen) if chosen in self.NAMES else -1)
        self.pixel.fill_(float("nan") if pixel is None else pixel)

    def thresholds(self):
        if int(self.chosen) < 0:
            return None
        name = self.NAMES[int(self.chosen)]
        values = {n: float(v) for n, v in zip(self.NAMES, self.values.tolist())}
        return {"chosen": name, "value": values[name], "values": values,
                "pixel_threshold": float(self.pixel)}  # fmt: skip


class _ToyModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(2, 1)
        self.postprocessor = _ToyPostProcessor()


def test_thresholds_go_into_the_checkpoint_state_dict_and_come_back_first(tmp_path):
    model = _ToyModel()
    ckpt = tmp_path / "epoch_1.pth"
    torch.save({"state_dict": model.state_dict(), "meta": {}}, ckpt)
    (tmp_path / "last_checkpoint").write_text(str(ckpt))
    results = {
        "model": "Toy",
        "thresholds": {"f1_percentile": {"value": 0.25}, "f1_uniform": {"value": 0.5},
                       "youden_j": {"value": 0.75}, "percentile_95": {"value": 1.5}},
        "confusion": {"threshold": "youden_j", "threshold_value": 0.75},
        "pixel": {"threshold": 0.3},
    }  # fmt: skip
    attach_thresholds(tmp_path, results, model=model)
    saved = torch.load(ckpt, weights_only=False)
    assert saved["state_dict"]["postprocessor.values"].tolist() == [0.25, 0.5, 0.75, 1.5]
    assert saved["meta"][META_KEY]["chosen"] == "youden_j"  # the old meta too
    # A fresh model loading the file: the post-processor wins over meta and json.
    fresh = _ToyModel()
    fresh.load_state_dict(saved["state_dict"])
    saved["meta"][META_KEY]["value"] = 99.0
    record, source = stored_thresholds(fresh, saved, ckpt)
    assert (record["chosen"], record["value"]) == ("youden_j", 0.75) and str(ckpt) in source
    assert record["pixel_threshold"] == pytest.approx(0.3)
    # Without post-processor values: the meta, then thresholds.json beside the file.
    assert stored_thresholds(_ToyModel(), saved, ckpt)[0]["value"] == 99.0
    old = {"state_dict": saved["state_dict"], "meta": {}}
    record, source = stored_thresholds(_ToyModel(), old, ckpt)
    assert source.endswith("thresholds.json") and record["value"] == 0.75


def test_infer_reads_thresholds_json_beside_an_old_checkpoint(trained, tiny_data, tmp_path):
    cfg, work, results = trained
    old = tmp_path / "old_run" / "epoch_1.pth"
    old.parent.mkdir()
    checkpoint = torch.load(work / "epoch_1.pth", weights_only=False)
    del checkpoint["meta"][META_KEY]
    state = checkpoint["state_dict"]
    checkpoint["state_dict"] = {
        k: v for k, v in state.items() if not k.startswith("postprocessor.")
    }
    torch.save(checkpoint, old)
    shutil.copy(work / "thresholds.json", old.parent / "thresholds.json")
    rows = infer(cfg, old, tiny_data / "tiles" / "test" / "good", tmp_path / "o")
    value = results["confusion"]["threshold_value"]
    assert {r["threshold_name"] for r in rows} == {"f1_percentile"}
    assert [r["label"] for r in rows] == [int(r["score"] >= value) for r in rows]


def test_trained_checkpoint_carries_thresholds_in_the_post_processor(trained):
    pytest.importorskip("adtool.models.postprocess")
    cfg, work, results = trained
    saved = torch.load(work / "epoch_1.pth", weights_only=False)
    assert any(k.startswith("postprocessor.") for k in saved["state_dict"])
    model, loaded = load_model(cfg, work / "epoch_1.pth")
    stored = model.postprocessor.thresholds()
    assert stored["chosen"] == results["confusion"]["threshold"]
    assert stored["value"] == pytest.approx(results["confusion"]["threshold_value"])
    for name, entry in results["thresholds"].items():
        assert stored["values"][name] == pytest.approx(entry["value"])
