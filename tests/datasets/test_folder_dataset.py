"""Folder: custom normal/abnormal/mask folders, the seeded normal split and metadata.csv."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import adtool.datasets.folder as folder_module
from adtool.datasets import Folder
from adtool.errors import ConfigError, DataError


def write_png(path: Path, value: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, np.uint8)).save(path)


def make_normals(base: Path, n: int = 10) -> None:
    for i in range(n):
        write_png(base / "good" / f"n{i:02d}.png")


def rows(dataset: Folder) -> list[tuple]:
    return [
        (
            Path(d["img_path"]).name,
            d["gt_label"],
            d["defect_type"],
            Path(d["mask_path"]).name if d["mask_path"] else None,
        )
        for d in (dataset.get_data_info(i) for i in range(len(dataset)))
    ]


def test_flat_defects_without_masks_and_seeded_split(tmp_path):
    base = tmp_path / "custom"
    make_normals(base)
    for name in ("d0.png", "d1.jpg", "d2.bmp"):
        write_png(base / "defect" / name)
    train = Folder(tmp_path, "custom", "train")
    test = Folder(tmp_path, "custom", "test")
    picked = np.random.default_rng(0).permutation(10)[:2]
    normal_test = sorted(f"n{i:02d}.png" for i in picked)
    assert len(train) == 8
    assert rows(test) == [
        ("d0.png", 1, "defect", None),
        ("d1.jpg", 1, "defect", None),
        ("d2.bmp", 1, "defect", None),
    ] + [(name, 0, "good", None) for name in normal_test]
    assert not {Path(train.get_data_info(i)["img_path"]).name for i in range(8)} & set(normal_test)
    assert not test.has_masks
    assert test.metainfo["category"] == "custom"
    other = Folder(tmp_path, "custom", "test", seed=1)
    assert len(other) == 5  # same sizes; the seed only changes which normals are picked


def test_subfolder_defects_with_mirrored_and_flat_masks(tmp_path):
    base = tmp_path / "custom"
    make_normals(base, 4)
    write_png(base / "defect" / "scratch" / "a.png")
    write_png(base / "defect" / "scratch" / "b.png")
    write_png(base / "defect" / "stain" / "a.png")
    write_png(base / "masks" / "scratch" / "a_mask.png", 255)
    write_png(base / "masks" / "scratch" / "b.png", 255)
    write_png(base / "masks" / "a_mask.png", 255)  # flat fallback, for stain/a
    test = Folder(tmp_path, "custom", "test", mask_dir="masks", normal_split_ratio=0.25)
    items = [test.get_data_info(i) for i in range(len(test))]
    anomalous = [d for d in items if d["gt_label"] == 1]
    assert [(d["defect_type"], Path(d["img_path"]).name) for d in anomalous] == [
        ("scratch", "a.png"),
        ("scratch", "b.png"),
        ("stain", "a.png"),
    ]
    assert [d["mask_path"] for d in anomalous] == [
        str(base / "masks/scratch/a_mask.png"),
        str(base / "masks/scratch/b.png"),
        str(base / "masks/a_mask.png"),
    ]
    assert test.has_masks
    assert sum(d["gt_label"] == 0 for d in items) == 1


def test_normal_test_dir_and_no_category(tmp_path):
    make_normals(tmp_path, 3)
    write_png(tmp_path / "good_test" / "t0.png")
    write_png(tmp_path / "bad" / "x.png")
    kwargs = dict(abnormal_dir="bad", normal_test_dir="good_test")
    train = Folder(tmp_path, None, "train", **kwargs)
    test = Folder(tmp_path, None, "test", **kwargs)
    assert len(train) == 3
    assert rows(test) == [("x.png", 1, "bad", None), ("t0.png", 0, "good", None)]
    assert test.metainfo["category"] == tmp_path.name
    assert (tmp_path / "metadata.csv").is_file()


def test_metadata_csv_rows(tmp_path):
    base = tmp_path / "custom"
    make_normals(base, 5)
    write_png(base / "defect" / "crack" / "c.png")
    write_png(base / "masks" / "crack" / "c_mask.png", 255)
    Folder(tmp_path, "custom", "train", mask_dir="masks")
    with open(base / "metadata.csv", newline="") as f:
        lines = list(csv.reader(f))
    assert lines[0] == ["img_path", "split", "label", "mask_path", "defect_type"]
    picked = f"good/n{int(np.random.default_rng(0).permutation(5)[0]):02d}.png"
    expected = [["defect/crack/c.png", "test", "1", "masks/crack/c_mask.png", "crack"]]
    expected += [[picked, "test", "0", "", "good"]]
    expected += [
        [f"good/n{i:02d}.png", "train", "0", "", "good"]
        for i in range(5)
        if f"good/n{i:02d}.png" != picked
    ]
    assert lines[1:] == expected
    assert not list(base.glob(".metadata.csv.*"))  # no temp file left behind


def test_read_only_folder_warns_and_carries_on(tmp_path, monkeypatch):
    base = tmp_path / "custom"
    make_normals(base, 4)
    write_png(base / "defect" / "d.png")

    def refuse(path, text):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(folder_module, "atomic_write_text", refuse)
    with pytest.warns(UserWarning, match="read-only"):
        test = Folder(tmp_path, "custom", "test")
    assert len(test) == 2
    assert not (base / "metadata.csv").exists()


def test_folder_errors(tmp_path):
    make_normals(tmp_path / "custom", 3)
    # No defect/ folder: normal-only data (issue 20), the held-out normals are the test.
    assert len(Folder(tmp_path, "custom", "test")) == 1
    with pytest.raises(DataError, match="defect_typo"):
        Folder(tmp_path, "custom", abnormal_dir="defect_typo")
    assert len(Folder(tmp_path, "custom", "test", abnormal_dir=None)) == 1
    with pytest.raises(DataError, match=str(tmp_path / "custom" / "normal")):
        Folder(tmp_path, "custom", normal_dir="normal", abnormal_dir=None)
    with pytest.raises(DataError, match=str(tmp_path / "other")):
        Folder(tmp_path, "other", abnormal_dir=None)
    with pytest.raises(ConfigError, match="normal_split_ratio"):
        Folder(tmp_path, "custom", normal_split_ratio=1.0)
    assert Folder.list_categories(tmp_path) == ["custom"]
