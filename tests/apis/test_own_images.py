"""Your own images in one command (issue 20), end to end through the CLI on trees built
from the generated sample data (64 px, random weights)."""

from __future__ import annotations

import csv
import json

import pytest
from test_cli import TINY, _assert_one_line_error, _invoke

CONFIG = "patchcore_effnetlite0_mvtec"


def _train(data_root, work_dir, *extra):
    return _invoke(
        ["train", CONFIG, "--data-root", str(data_root), "--work-dir", str(work_dir), *extra, *TINY]
    )


def test_folder_with_masks_gives_pixel_metrics_with_no_other_option(own_images, tmp_path):
    root = own_images("folder")
    code, out = _train(root, tmp_path / "w", "--category", "mybrick")
    assert code == 0, out
    assert "data layout: Folder (good/ + defect/)" in out and "--dataset folder" in out
    results = json.loads((tmp_path / "w" / "mybrick" / "results.json").read_text())
    assert results["dataset"] == "folder"
    assert results["n_test"] == 2 + 6  # 20 % of the 9 normals + 3 defect types x 2
    assert sorted(results["per_defect"]) == ["chip", "dent", "scratch"]
    pixel = results["pixel"]
    assert pixel is not None
    assert 0.0 <= pixel["AUROC"] <= 1.0 and 0.0 <= pixel["AUPRO"] <= 1.0
    assert results["image"]["AUROC"] is not None
    assert "normal_only" not in results


def test_layout_picks_the_category_and_dataset_flag_overrides(own_images, tmp_path):
    root = own_images("folder", masks=False)
    # No --category: the only category folder on disk is run (the config's 'bottle' is not).
    code, out = _train(root, tmp_path / "a")
    assert code == 0, out
    results = json.loads((tmp_path / "a" / "mybrick" / "results.json").read_text())
    assert results["dataset"] == "folder" and results["pixel"] is None
    # --dataset names the preset; no layout line then.
    code, out = _train(root, tmp_path / "b", "--category", "mybrick", "--dataset", "folder")
    assert code == 0, out
    assert "data layout:" not in out
    assert (tmp_path / "b" / "mybrick" / "results.json").is_file()


def test_normal_only_folder_trains_writes_percentiles_and_infers(own_images, tmp_path):
    root = own_images("folder", defects=False)
    code, out = _train(root, tmp_path / "w", "--category", "mybrick")
    assert code == 0, out
    assert "data layout: Folder (good/ only: normal-only)" in out
    assert "normal-only: 2 held-out normal images" in out
    run_dir = tmp_path / "w" / "mybrick"
    results = json.loads((run_dir / "results.json").read_text())
    assert results["image"]["AUROC"] is None
    assert "normal-only" in results["image"]["note"]
    block = results["normal_only"]
    assert block["n_normal"] == 2
    held_out = [
        float(r["score"]) for r in csv.DictReader((run_dir / "scores.csv").open(encoding="utf-8"))
    ]
    assert block["score_distribution"]["max"] == pytest.approx(max(held_out), rel=1e-6)
    thresholds = results["thresholds"]
    for name, rate in (
        ("percentile_95", 0.05),
        ("percentile_99", 0.01),
        ("percentile_99_9", 0.001),
    ):
        assert thresholds[name]["expected_false_alarm_rate"] == rate
    assert thresholds["percentile_95"]["value"] < thresholds["percentile_99"]["value"]
    assert results["confusion"]["threshold"] == "percentile_95"
    stored = json.loads((run_dir / "thresholds.json").read_text())
    assert stored["chosen"] == "percentile_95"
    assert stored["values"]["percentile_99"] == thresholds["percentile_99"]["value"]

    # Infer on new images: labelled at the stored percentile, or at another one.
    images = root / "mybrick" / "good"
    checkpoint = next(run_dir.glob("*.pth"))
    code, out = _invoke(
        ["infer", CONFIG, str(checkpoint), str(images), "--out", str(tmp_path / "i"), *TINY]
    )
    assert code == 0, out
    rows = list(csv.DictReader((tmp_path / "i" / "predictions.csv").open(encoding="utf-8")))
    assert len(rows) == 9
    value = thresholds["percentile_95"]["value"]
    assert {r["threshold_name"] for r in rows} == {"percentile_95"}
    assert all(int(r["label"]) == int(float(r["score"]) >= value) for r in rows)
    code, out = _invoke(
        [
            "infer", CONFIG, str(checkpoint), str(images), "--out", str(tmp_path / "j"),
            "--threshold", "percentile_99.9", "--dataset", "folder", *TINY,
        ]
    )  # fmt: skip
    assert code == 0, out
    rows = list(csv.DictReader((tmp_path / "j" / "predictions.csv").open(encoding="utf-8")))
    assert {r["threshold_name"] for r in rows} == {"percentile_99_9"}
    assert float(rows[0]["threshold_value"]) == pytest.approx(
        thresholds["percentile_99_9"]["value"]
    )


def test_wrong_tree_is_one_line_with_the_expected_trees(tmp_path):
    (tmp_path / "data" / "mybrick" / "normal").mkdir(parents=True)
    code, out = _train(tmp_path / "data", tmp_path / "w", "--category", "mybrick")
    _assert_one_line_error(code, out, "no known data layout", "Folder <root>/<category>/{good")
    assert not (tmp_path / "w").exists()


def test_category_is_checked_before_the_layout_is_looked_for(own_images, tmp_path):
    root = own_images("folder")
    code, out = _train(root, tmp_path / "w", "--category", "../mybrick")
    _assert_one_line_error(code, out, "is not a folder name")
