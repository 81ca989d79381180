"""MVTecAD, VisA, BTAD and SampleDataset on tiny layouts written into tmp_path."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import adtool.datasets  # noqa: F401  (registers everything)
from adtool.datasets import BTAD, MVTecAD, SampleDataset, VisA
from adtool.errors import ConfigError, DataError
from adtool.registry import DATASETS

PIPELINE = [
    dict(type="LoadAnomalyImage"),
    dict(type="LoadAnomalyMask"),
    dict(type="Resize", size=16),
    dict(type="PackAnomalyInputs"),
]


def write_png(path: Path, value: int = 128, size: int = 24, mode: str = "RGB") -> Path:
    """A flat image (or a mask with a 6x6 square of ``value``) at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "mask":
        arr = np.zeros((size, size), np.uint8)
        arr[4:10, 4:10] = value
        Image.fromarray(arr).save(path)
    else:
        Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)
    return path


def make_mvtec(root: Path, category: str = "bottle", masks: bool = True) -> Path:
    cat = root / category
    for i in range(3):
        write_png(cat / "train" / "good" / f"{i:03d}.png")
    (cat / "train" / "good" / "notes.txt").write_text("not an image")
    for i in range(2):
        write_png(cat / "test" / "good" / f"{i:03d}.png")
    write_png(cat / "test" / "broken" / "000.png")
    write_png(cat / "test" / "broken" / "001.PNG")
    write_png(cat / "test" / "scratch" / "000.jpg")
    if masks:
        write_png(cat / "ground_truth" / "broken" / "000_mask.png", 255, mode="mask")
        write_png(cat / "ground_truth" / "broken" / "001_mask.png", 255, mode="mask")
        write_png(cat / "ground_truth" / "scratch" / "000_mask.png", 255, mode="mask")
    return root


def test_mvtec_items_labels_and_masks(tmp_path):
    root = make_mvtec(tmp_path / "mvtec")
    train = MVTecAD(root, "bottle", "train")
    test = MVTecAD(root, "bottle", "test")
    assert len(train) == 3
    assert {train.get_data_info(i)["gt_label"] for i in range(3)} == {0}
    items = [test.get_data_info(i) for i in range(len(test))]
    cat = root / "bottle"
    assert [d["img_path"] for d in items] == [
        str(cat / "test/broken/000.png"),
        str(cat / "test/broken/001.PNG"),
        str(cat / "test/good/000.png"),
        str(cat / "test/good/001.png"),
        str(cat / "test/scratch/000.jpg"),
    ]
    assert [d["gt_label"] for d in items] == [1, 1, 0, 0, 1]
    assert [d["defect_type"] for d in items] == ["broken", "broken", "good", "good", "scratch"]
    assert [d["mask_path"] for d in items] == [
        str(cat / "ground_truth/broken/000_mask.png"),
        str(cat / "ground_truth/broken/001_mask.png"),
        None,
        None,
        str(cat / "ground_truth/scratch/000_mask.png"),
    ]
    assert {d["category"] for d in items} == {"bottle"}
    assert test.has_masks
    assert test.metainfo == {"dataset": "mvtec", "category": "bottle", "has_masks": True}


def test_mvtec_pipeline_gives_masks_at_image_size(tmp_path):
    root = make_mvtec(tmp_path / "mvtec")
    test = DATASETS.build(
        dict(
            type="MVTecAD", data_root=str(root), category="bottle", split="test", pipeline=PIPELINE
        )
    )
    anomalous, normal = test[0], test[2]
    assert anomalous["inputs"].shape == (3, 16, 16) and anomalous["inputs"].dtype == torch.uint8
    sample = anomalous["data_samples"]
    assert sample.gt_mask.shape == (16, 16)
    # 6x6 of 24x24 pixels -> 4x4 of 16x16 under nearest resizing.
    assert int(sample.gt_mask.sum()) == 16
    assert int(sample.gt_label) == 1 and sample.defect_type == "broken"
    assert normal["data_samples"].gt_mask.sum() == 0
    assert sample.ori_shape == (24, 24) and sample.img_shape == (16, 16)


def test_dataset_without_masks_leaves_gt_mask_absent(tmp_path):
    root = make_mvtec(tmp_path / "mvtec", masks=False)
    test = MVTecAD(root, "bottle", "test", pipeline=PIPELINE)
    assert not test.has_masks
    assert "gt_mask" not in test[0]["data_samples"]  # anomalous
    assert "gt_mask" not in test[2]["data_samples"]  # normal


def test_partial_masks_warn_and_disable_masks(tmp_path, recwarn, warning_lines):
    root = make_mvtec(tmp_path / "mvtec")
    (root / "bottle" / "ground_truth" / "scratch" / "000_mask.png").unlink()
    test = MVTecAD(root, "bottle", "test")
    MVTecAD(root, "bottle", "train")  # the other split scans the same folders
    lines = warning_lines
    # One log line, not a Python warning with its source line, and not once per split.
    assert len(lines) == 1 and "1 of 3 anomalous images have no mask" in lines[0]
    assert not [w for w in recwarn if "no mask" in str(w.message)]
    assert not test.has_masks
    assert all(test.get_data_info(i)["mask_path"] is None for i in range(len(test)))


def test_list_categories(tmp_path):
    root = make_mvtec(tmp_path / "data", "bottle")
    make_mvtec(root, "carpet")
    make_mvtec(root, "widget")
    assert MVTecAD.list_categories(root) == ["bottle", "carpet"]
    assert SampleDataset.list_categories(root) == ["bottle", "carpet", "widget"]
    # A category outside the official list still loads when its folder has the layout.
    assert len(MVTecAD(root, "widget", "test")) == 5


def test_missing_root_names_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=str(missing)) as err:
        MVTecAD(missing, "bottle")
    assert "--data-root" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DataError, match=str(missing)):
        MVTecAD.list_categories(missing)


def test_missing_category_names_the_path_and_fix(tmp_path):
    root = make_mvtec(tmp_path / "mvtec")
    with pytest.raises(DataError) as err:
        MVTecAD(root, "cable")
    message = str(err.value)
    assert str(root / "cable") in message
    assert "make_sample_data.py" in message and "bottle" in message


def test_empty_split_is_a_data_error(tmp_path):
    root = make_mvtec(tmp_path / "mvtec")
    for p in (root / "bottle" / "train" / "good").glob("*.png"):
        p.unlink()
    with pytest.raises(DataError, match="no train images"):
        MVTecAD(root, "bottle", "train")


def test_wrong_split_and_unknown_key_are_config_errors(tmp_path):
    root = make_mvtec(tmp_path / "mvtec")
    with pytest.raises(ConfigError, match="'val'"):
        MVTecAD(root, "bottle", "val")
    with pytest.raises(ConfigError, match="did you mean 'split'"):
        DATASETS.build(dict(type="MVTecAD", data_root=str(root), category="bottle", splits="x"))


def test_lazy_init_and_indices(tmp_path):
    root = make_mvtec(tmp_path / "mvtec")
    lazy = MVTecAD(root, "bottle", "test", lazy_init=True)
    assert lazy.metainfo["has_masks"] is None
    assert lazy.has_masks and len(lazy) == 5
    assert len(MVTecAD(root, "bottle", "test", indices=2, serialize_data=False)) == 2


def make_visa(root: Path) -> Path:
    rows = [("object", "split", "label", "image", "mask")]
    for obj in ("candle", "pcb1"):
        for i in range(3):
            img = f"{obj}/Data/Images/Normal/{i:04d}.JPG"
            write_png(root / img)
            rows.append((obj, "train" if i < 2 else "test", "normal", img, ""))
        for i in range(2):
            img, mask = (
                f"{obj}/Data/Images/Anomaly/{i:03d}.JPG",
                f"{obj}/Data/Masks/Anomaly/{i:03d}.png",
            )
            write_png(root / img)
            # VisA masks hold class indices (here 3): > 0 is a defect.
            write_png(root / mask, 3, mode="mask")
            rows.append((obj, "test", "anomaly", img, mask))
    (root / "split_csv").mkdir(parents=True)
    with open(root / "split_csv" / "1cls.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return root


def test_visa_reads_split_csv(tmp_path):
    root = make_visa(tmp_path / "visa")
    train = VisA(root, "candle", "train")
    test = VisA(root, "candle", "test", pipeline=PIPELINE)
    assert len(train) == 2 and len(test) == 3
    items = [test.get_data_info(i) for i in range(3)]
    assert [d["img_path"] for d in items] == [
        str(root / "candle/Data/Images/Anomaly/000.JPG"),
        str(root / "candle/Data/Images/Anomaly/001.JPG"),
        str(root / "candle/Data/Images/Normal/0002.JPG"),
    ]
    assert [d["gt_label"] for d in items] == [1, 1, 0]
    assert [d["defect_type"] for d in items] == ["anomaly", "anomaly", "good"]
    assert items[0]["mask_path"] == str(root / "candle/Data/Masks/Anomaly/000.png")
    assert items[2]["mask_path"] is None
    assert test.has_masks
    assert int(test[0]["data_samples"].gt_mask.sum()) == 16
    assert VisA.list_categories(root) == ["candle", "pcb1"]


def test_visa_errors(tmp_path):
    root = make_visa(tmp_path / "visa")
    with pytest.raises(DataError, match="objects listed there: candle, pcb1"):
        VisA(root, "cashew")
    (root / "candle/Data/Images/Anomaly/001.JPG").unlink()
    with pytest.raises(DataError, match="1 file"):
        VisA(root, "candle", "test")
    with pytest.raises(DataError, match="split_csv/other.csv"):
        VisA(root, "candle", split_csv="split_csv/other.csv")


def make_btad(root: Path) -> Path:
    cat = root / "02"
    for i in range(2):
        write_png(cat / "train" / "ok" / f"{i:04d}.bmp")
    write_png(cat / "test" / "ok" / "0000.bmp")
    write_png(cat / "test" / "ko" / "0000.bmp")
    write_png(cat / "test" / "ko" / "0001.png")
    write_png(cat / "ground_truth" / "ko" / "0000.png", 255, mode="mask")
    write_png(cat / "ground_truth" / "ko" / "0001.bmp", 255, mode="mask")
    return root


def test_btad_matches_masks_by_stem(tmp_path):
    root = make_btad(tmp_path / "btad")
    assert BTAD.list_categories(root) == ["02"]
    assert len(BTAD(root, "02", "train")) == 2
    test = BTAD(root, "02", "test")
    items = [test.get_data_info(i) for i in range(len(test))]
    cat = root / "02"
    assert [(Path(d["img_path"]).name, d["gt_label"], d["defect_type"]) for d in items] == [
        ("0000.bmp", 1, "ko"),
        ("0001.png", 1, "ko"),
        ("0000.bmp", 0, "good"),
    ]
    assert [d["mask_path"] for d in items] == [
        str(cat / "ground_truth/ko/0000.png"),
        str(cat / "ground_truth/ko/0001.bmp"),
        None,
    ]
    assert test.has_masks
    with pytest.raises(DataError, match="'01' not found"):
        BTAD(root, "01")
