"""results.json / results.txt / plots written by write_report."""

import json

import numpy as np
import pytest
from PIL import Image

from adtool.errors import DataError
from adtool.evaluation.report import build_report, format_results_txt, load_results, write_report

DESIGN_TOP_KEYS = {
    "model", "config", "dataset", "category", "image", "pixel", "thresholds", "confusion",
    "per_defect", "timing", "n_train", "n_test",
}  # fmt: skip


def _arrays(tmp_path, with_masks=True):
    rng = np.random.default_rng(0)
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1], np.int64)
    defects = ["good"] * 4 + ["crack", "crack", "hole", "hole"]
    masks = np.zeros((8, 16, 16), np.uint8)
    masks[4:, 3:8, 3:8] = 1
    maps = (0.5 * rng.random((8, 16, 16)) + masks).astype(np.float16)
    paths = []
    for i, defect in enumerate(defects):
        path = tmp_path / "data" / defect / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return {
        "scores": maps.reshape(8, -1).max(1).astype(np.float32),
        "labels": labels,
        "img_paths": paths,
        "defect_types": defects,
        "maps": maps,
        "masks": masks if with_masks else None,
    }


def _full_report(arrays):
    report = build_report(
        arrays["scores"], arrays["labels"], arrays["defect_types"], arrays["maps"],
        arrays["masks"],
    )  # fmt: skip
    return {
        "model": "PatchCore", "config": "patchcore_r18_mvtec", "dataset": "mvtec",
        "category": "bottle", **report,
        "timing": {"train_s": 1.5, "test_s": 2.0, "test_images_per_s": 4.0}, "n_train": 20,
    }  # fmt: skip


def test_write_report_files_and_contract(tmp_path):
    arrays = _arrays(tmp_path)
    out = tmp_path / "work" / "bottle"
    write_report(out, _full_report(arrays), arrays, max_maps_per_defect=2)

    for name in ("results.json", "results.txt", "histogram.png", "roc.png", "pr.png"):
        assert (out / name).stat().st_size > 0, name
    assert not list(out.rglob("*.tmp"))
    rows = (out / "scores.csv").read_text().splitlines()
    assert rows[0] == "img_path,defect_type,gt_label,score,pred_label"
    assert len(rows) == 1 + len(arrays["scores"])
    first = rows[1].split(",")
    assert float(first[3]) == pytest.approx(float(arrays["scores"][0]))
    assert first[2] == str(int(arrays["labels"][0]))
    for defect, n in (("good", 2), ("crack", 2), ("hole", 2)):
        assert len(list((out / "maps" / defect).glob("*.png"))) == n

    results = json.loads((out / "results.json").read_text())
    assert set(results) == DESIGN_TOP_KEYS
    assert list(results)[:4] == ["model", "config", "dataset", "category"]
    assert set(results["image"]) == {"AUROC", "AUPR", "F1_max"}
    assert {"AUROC", "AUPRO"} <= set(results["pixel"])
    assert results["image"]["AUROC"] == pytest.approx(1.0)
    assert results["pixel"]["AUPRO"] == pytest.approx(1.0)
    assert set(results["thresholds"]) == {
        "f1_percentile",
        "f1_uniform",
        "youden_j",
        "percentile_95",
    }
    assert set(results["thresholds"]["youden_j"]) == {"value", "sensitivity", "specificity"}
    assert {"threshold", "TP", "FN", "TN", "FP", "accuracy", "precision", "recall"} <= set(
        results["confusion"]
    )
    assert results["confusion"]["TP"] == 4 and results["confusion"]["TN"] == 4
    assert results["per_defect"] == {
        "crack": {"image_AUROC": 1.0, "n": 2},
        "hole": {"image_AUROC": 1.0, "n": 2},
    }
    assert results["n_test"] == 8 and results["n_train"] == 20
    assert load_results(out) == results == load_results(out / "results.json")


def test_results_txt_layout(tmp_path):
    arrays = _arrays(tmp_path)
    text = format_results_txt(_full_report(arrays))
    assert text.startswith("model: PatchCore   config: patchcore_r18_mvtec")
    lines = text.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("Confusion matrix at")))
    assert "f1_percentile" in lines[start]
    assert lines[start + 1].split() == ["pred", "normal", "pred", "anomalous"]
    assert lines[start + 2].split() == ["true", "normal", "4", "0"]
    assert lines[start + 3].split() == ["true", "anomalous", "0", "4"]
    for name in (
        "f1_percentile",
        "f1_uniform",
        "youden_j",
        "percentile_95",
        "crack",
        "hole",
        "train_s",
        "AUPRO@0.3",
    ):
        assert name in text


def test_one_class_and_no_masks(tmp_path):
    arrays = _arrays(tmp_path, with_masks=False)
    keep = arrays["labels"] == 0
    one_class = {
        "scores": arrays["scores"][keep], "labels": arrays["labels"][keep],
        "img_paths": [p for p, k in zip(arrays["img_paths"], keep) if k],
        "defect_types": ["good"] * int(keep.sum()), "maps": arrays["maps"][keep], "masks": None,
    }  # fmt: skip
    report = build_report(
        one_class["scores"], one_class["labels"], one_class["defect_types"], one_class["maps"], None
    )
    assert report["pixel"] is None
    write_report(tmp_path / "out", report, one_class)
    results = load_results(tmp_path / "out")
    assert results["pixel"] is None and results["image"]["AUROC"] is None
    assert results["thresholds"]["youden_j"]["value"] is None
    assert "only normal images" in results["thresholds"]["youden_j"]["note"]
    text = (tmp_path / "out" / "results.txt").read_text()
    assert "no ground-truth masks" in text and "n/a" in text
    assert (tmp_path / "out" / "roc.png").stat().st_size > 0


def test_text_only_and_replace(tmp_path):
    write_report(tmp_path, {"image": {"AUROC": 0.5}}, None)
    write_report(tmp_path, {"image": {"AUROC": 0.75}, "extra": np.float32(2.0)}, None)
    assert load_results(tmp_path) == {"image": {"AUROC": 0.75}, "extra": 2.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json", "results.txt"]


def test_load_missing_results(tmp_path):
    with pytest.raises(DataError, match="results.json"):
        load_results(tmp_path)
