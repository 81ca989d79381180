"""Real offline data for the HF tasks (scikit-learn's digits and photos), the writers'
CLI, the shift augmentation of the tiny ViT recipe, and its quality floor on real digits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adtool.datasets.hf import (
    DIGIT_CLASSES,
    make_digits_classification_dataset,
    make_digits_detection_dataset,
    make_digits_segmentation_dataset,
    make_photo_sr_dataset,
)
from adtool.datasets.hf.real_data import digit_scene, load_digit_images, split_digits
from adtool.datasets.transforms import RandomShift
from adtool.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "vit" / "vit_tiny_imagefolder.py"


@pytest.fixture(scope="module")
def digits_root(tmp_path_factory):
    return make_digits_classification_dataset(tmp_path_factory.mktemp("digits"))


def test_digits_imagefolder_is_the_real_set_split_by_class(digits_root):
    images, labels = load_digit_images()
    assert images.shape == (1797, 8, 8) and images.max() == 255 and images.min() == 0
    counts = {}
    for split in ("train", "val"):
        folders = sorted(p.name for p in (digits_root / split).iterdir())
        assert folders == list(DIGIT_CLASSES)
        counts[split] = {d: len(list((digits_root / split / d).glob("*.png"))) for d in folders}
    assert sum(counts["train"].values()) == 1437 and sum(counts["val"].values()) == 360
    # Stratified: every class keeps about 20 % of its images for val.
    for d in DIGIT_CLASSES:
        share = counts["val"][d] / (counts["val"][d] + counts["train"][d])
        assert 0.18 <= share <= 0.22, (d, share)
    # A file is the sklearn image of that index, at its native 8x8, in its label's folder.
    path = next((digits_root / "val" / "7").glob("*.png"))
    index = int(path.stem)
    assert labels[index] == 7
    np.testing.assert_array_equal(np.array(Image.open(path)), images[index])
    train, val = split_digits(labels)
    assert not set(train) & set(val) and len(train) + len(val) == 1797
    np.testing.assert_array_equal(split_digits(labels)[1], val)  # the same split each time


def test_digit_scene_boxes_hold_the_ink_of_their_digit():
    images, labels = load_digit_images()
    rng = np.random.default_rng(5)
    for _ in range(20):
        image, ink, objects = digit_scene(rng, images, labels, size=64)
        assert image.shape == (64, 64, 3) and 1 <= len(objects) <= 3
        covered = np.zeros_like(ink, bool)
        for digit, (x1, y1, x2, y2) in objects:
            assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64 and 0 <= digit <= 9
            assert ink[y1:y2, x1:x2].max() >= 96  # real ink inside every box
            covered[y1:y2, x1:x2] = True
        assert ink[~covered].max() < 32  # nothing drawn outside the boxes
        # Dark ink on light paper: the image is darkest where the ink is.
        assert image[..., 0][ink > 200].mean() < image[..., 0][ink == 0].mean() - 100


def test_digit_detection_and_segmentation_layouts(tmp_path):
    det = make_digits_detection_dataset(tmp_path / "det", n_train=6, n_val=3)
    coco = json.loads((det / "annotations" / "train.json").read_text())
    assert [c["name"] for c in coco["categories"]] == list(DIGIT_CLASSES)
    assert len(coco["images"]) == 6 and len(coco["annotations"]) >= 6
    assert {a["category_id"] for a in coco["annotations"]} <= set(range(1, 11))
    seg = make_digits_segmentation_dataset(tmp_path / "seg", n_train=6, n_val=3)
    assert (seg / "classes.txt").read_text().split() == ["background", *DIGIT_CLASSES]
    for name in ("000000.png", "000005.png"):
        mask = np.array(Image.open(seg / "masks" / "train" / name))
        assert set(np.unique(mask)) <= {*range(11), 255} and (mask == 255).any()
        assert ((mask >= 1) & (mask <= 10)).sum() > 50
    # The same scenes in both layouts: a detection box frames each labelled mask region.
    mask = np.array(Image.open(seg / "masks" / "train" / "000000.png"))
    boxes = [a for a in coco["annotations"] if a["image_id"] == 1]  # 000000.png
    for box in boxes:
        x, y, w, h = box["bbox"]
        assert (mask[y : y + h, x : x + w] == box["category_id"]).any()


def test_photo_tiles_train_on_one_photo_and_test_on_the_other(tmp_path):
    root = make_photo_sr_dataset(tmp_path)
    train = sorted((root / "train" / "HR").glob("*.png"))
    val = sorted((root / "val" / "HR").glob("*.png"))
    assert len(train) == 12 * 19  # half-tile strides: (427 - 64) // 32 + 1 rows, 19 columns
    assert len(val) == 60  # (427 // 64) x (640 // 64), no overlap
    assert all(p.name.startswith("china") for p in train)
    assert all(p.name.startswith("flower") for p in val)
    assert np.array(Image.open(val[0])).shape == (64, 64, 3)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--real"], "add --task"),
        (["--task", "classification", "--real", "--n-train", "3"], "fixed counts"),
    ],
)
def test_real_flag_errors_are_one_line(args, message, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "make_sample_data.py"),
            *args,
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_random_shift_moves_image_and_mask_together(monkeypatch):
    img = np.arange(5 * 6 * 3, dtype=np.uint8).reshape(5, 6, 3)
    mask = (np.arange(30).reshape(5, 6) % 2).astype(np.uint8)
    offsets = iter([2, -1])  # dy = 2, dx = -1
    monkeypatch.setattr(np.random, "randint", lambda low, high: next(offsets))
    out = RandomShift(max_shift=2, fill=9)({"img": img.copy(), "gt_mask": mask.copy()})
    assert out["img"].shape == img.shape and out["img_shape"] == (5, 6)
    np.testing.assert_array_equal(out["img"][2:, :5], img[:3, 1:])
    assert (out["img"][:2] == 9).all() and (out["img"][:, 5] == 9).all()
    np.testing.assert_array_equal(out["gt_mask"][2:, :5], mask[:3, 1:])
    assert (out["gt_mask"][:2] == 0).all()
    unchanged = RandomShift(max_shift=0)({"img": img.copy()})
    np.testing.assert_array_equal(unchanged["img"], img)
    with pytest.raises(ConfigError, match="max_shift"):
        RandomShift(max_shift=-1)


@pytest.mark.quality
def test_tiny_vit_learns_real_digits_with_the_default_recipe(digits_root, tmp_path):
    """Quality floor: top-1 >= 0.85 on the 360 held-out real digits (chance 0.10).

    vit_tiny_imagefolder exactly as shipped (15 epochs, batch 32, 675 iterations, num_classes
    read from the 10 class folders), 1 torch thread: 0.933 top-1 (train 94 s on a 2-core
    machine shared with another job). The recipe before this test (64 px, 8 px patches,
    flips, no label smoothing, 10 epochs) reached 0.594 on the same split.
    Command: .venv/bin/pytest tests/hf/test_real_data.py -m quality -s
    """
    pytest.importorskip("transformers")
    from adtool.apis import run

    result = run(str(TINY), data_root=digits_root, work_dir=tmp_path)[0]
    print(f"vit_tiny_imagefolder on real digits: {result['metrics']}")
    assert result["n_train"] == 1437 and result["n_test"] == 360
    assert result["train"]["epochs"] == 15
    assert result["metrics"]["accuracy"] >= 0.85
