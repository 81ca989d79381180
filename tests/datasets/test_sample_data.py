"""The procedural sample dataset: determinism, layout, defect sizes and the CLI tool."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adtool.datasets import SAMPLE_CATEGORIES, SAMPLE_DEFECTS, SampleDataset, make_sample_dataset

REPO = Path(__file__).resolve().parents[2]
TINY = dict(size=64, n_train=3, n_test_good=2, n_test_defect=2)


def file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_sample_dataset(tmp_path_factory.mktemp("sample") / "a", seed=0, **TINY)


def test_same_seed_gives_identical_bytes(tiny, tmp_path):
    again = make_sample_dataset(tmp_path / "b", seed=0, **TINY)
    assert file_bytes(tiny) == file_bytes(again)
    other = make_sample_dataset(tmp_path / "c", seed=1, **TINY)
    assert file_bytes(other).keys() == file_bytes(tiny).keys()
    assert file_bytes(other) != file_bytes(tiny)


def test_layout_and_dataset_counts(tiny):
    assert SampleDataset.list_categories(tiny) == sorted(SAMPLE_CATEGORIES)
    for category, defects in SAMPLE_DEFECTS.items():
        assert len(defects) == 3
        train = SampleDataset(tiny, category, "train")
        test = SampleDataset(tiny, category, "test")
        assert len(train) == 3 and len(test) == 2 + 3 * 2
        items = [test.get_data_info(i) for i in range(len(test))]
        assert sorted({d["defect_type"] for d in items}) == sorted([*defects, "good"])
        assert all(bool(d["mask_path"]) == (d["gt_label"] == 1) for d in items)
        assert test.has_masks


def test_masks_are_binary_and_plausibly_sized(tiny):
    fractions = []
    for mask_path in tiny.rglob("*_mask.png"):
        mask = np.asarray(Image.open(mask_path))
        assert mask.shape == (64, 64) and set(np.unique(mask)) <= {0, 255}
        fractions.append((mask > 0).mean())
    assert len(fractions) == 3 * 3 * 2
    assert 0.002 <= min(fractions) and max(fractions) <= 0.08


def test_images_are_rgb_and_normals_vary(tiny):
    a = np.asarray(Image.open(tiny / "tiles" / "train" / "good" / "000.png"))
    b = np.asarray(Image.open(tiny / "tiles" / "train" / "good" / "001.png"))
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 5


def test_rerun_with_fewer_images_removes_stale_files(tmp_path):
    root = make_sample_dataset(tmp_path, categories=["disk"], **TINY)
    make_sample_dataset(root, categories=["disk"], **dict(TINY, n_train=1, n_test_defect=1))
    assert len(list((root / "disk" / "train" / "good").iterdir())) == 1
    assert len(list((root / "disk" / "ground_truth" / "chip").iterdir())) == 1
    assert not list(root.rglob(".*.tmp"))


def test_tool_prints_one_line_summary(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "make_sample_data", REPO / "tools/make_sample_data.py"
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    argv = ["--out", str(tmp_path), "--size", "48", "--n-train", "1", "--n-test-good", "1"]
    assert tool.main([*argv, "--n-test-defect", "1", "--categories", "fabric"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and str(tmp_path) in out[0] and "fabric" in out[0]
    assert len(SampleDataset(tmp_path, "fabric", "test")) == 4
    assert tool.main(["--out", str(tmp_path), "--categories", "nope"]) == 2


def test_tool_writes_hf_task_sets(tmp_path):
    import json
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
    import make_sample_data

    out = tmp_path / "coco"
    assert (
        make_sample_data.main(
            ["--task", "detection", "--out", str(out), "--n-train", "3", "--n-val", "2"]
        )
        == 0
    )
    train = json.loads((out / "annotations" / "train.json").read_text())
    assert len(train["images"]) == 3 and len(list((out / "val").iterdir())) == 2
    out = tmp_path / "cls"
    assert (
        make_sample_data.main(
            ["--task", "classification", "--out", str(out), "--n-train", "2", "--n-val", "1"]
        )
        == 0
    )
    classes = sorted(p.name for p in (out / "train").iterdir())
    assert len(classes) == 4
    assert all(len(list((out / "train" / c).iterdir())) == 2 for c in classes)
    assert all(len(list((out / "val" / c).iterdir())) == 1 for c in classes)
