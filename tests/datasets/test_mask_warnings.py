"""Mask problems are reported once per dataset, as one log line (issue 11, item 10)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from adtool.datasets import MVTecAD

PIPELINE = [
    dict(type="LoadAnomalyImage"),
    dict(type="LoadAnomalyMask"),
    dict(type="PackAnomalyInputs"),
]


def _png(path, size, mask=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    if mask:
        arr = np.zeros((size, size), np.uint8)
        arr[: size // 2, : size // 2] = 255
    else:
        arr = np.full((size, size, 3), 100, np.uint8)
    Image.fromarray(arr).save(path)


def test_masks_of_another_size_warn_once_with_the_count(tmp_path, warning_lines):
    cat = tmp_path / "bottle"
    for i in range(2):
        _png(cat / "train" / "good" / f"{i:03d}.png", 32)
    _png(cat / "test" / "good" / "000.png", 32)
    for i in range(3):
        _png(cat / "test" / "broken" / f"{i:03d}.png", 32)
    # Two masks at half size, one at the image's size.
    _png(cat / "ground_truth" / "broken" / "000_mask.png", 16, mask=True)
    _png(cat / "ground_truth" / "broken" / "001_mask.png", 16, mask=True)
    _png(cat / "ground_truth" / "broken" / "002_mask.png", 32, mask=True)
    test = MVTecAD(tmp_path, "bottle", "test", pipeline=PIPELINE)
    MVTecAD(tmp_path, "bottle", "train", pipeline=PIPELINE)
    samples = [test[i]["data_samples"] for i in range(len(test))]
    lines = warning_lines
    assert len(lines) == 1, lines
    assert "2 of 3 masks differ in size from their image" in lines[0]
    assert "000_mask.png: 16x16, image 32x32" in lines[0]
    # Still resized to the image (nearest neighbour): a quarter of the pixels are defect.
    broken = [s for s in samples if s.defect_type == "broken"]
    assert all(tuple(s.gt_mask.shape[-2:]) == (32, 32) for s in broken)
    assert all(int(s.gt_mask.sum()) == 256 for s in broken)


def test_masks_of_the_image_size_do_not_warn(tmp_path, warning_lines):
    cat = tmp_path / "bottle"
    _png(cat / "train" / "good" / "000.png", 32)
    _png(cat / "test" / "broken" / "000.png", 32)
    _png(cat / "ground_truth" / "broken" / "000_mask.png", 32, mask=True)
    MVTecAD(tmp_path, "bottle", "test")
    assert warning_lines == []
