"""Your own images (issue 20): layouts recognised from generated trees, Folder masks found
by themselves, normal-only Folder data, and the one-line error for an unknown tree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adtool.datasets import Folder
from adtool.datasets.layout import EXPECTED_TREES, detect_layout
from adtool.errors import DataError


@pytest.mark.parametrize(
    ("layout", "dataset", "category"),
    [("folder", "folder", "mybrick"), ("btad", "btad", "01"), ("visa", "visa", None)],
)
def test_each_layout_is_recognised(own_images, layout, dataset, category):
    root = own_images(layout)
    found = detect_layout(root)
    assert found.dataset == dataset
    assert found.data_root == root
    if category is not None:
        assert found.categories == (category,)
        assert detect_layout(root, category).dataset == dataset


def test_mvtec_layout_and_its_categories(tiny_data):
    found = detect_layout(tiny_data)
    assert (found.dataset, found.category) == ("mvtec", None)
    assert sorted(found.categories) == ["disk", "tiles"]
    assert detect_layout(tiny_data, "tiles").categories == ("tiles",)


def test_folder_category_folder_given_as_root(own_images):
    root = own_images("folder")
    found = detect_layout(root / "mybrick")
    assert (found.dataset, found.data_root, found.category) == (
        "folder",
        root.resolve(),
        "mybrick",
    )


@pytest.mark.parametrize("tree", ["images/a.png", "mybrick/normal/a.png", "empty/"])
def test_unknown_tree_is_one_line_with_the_expected_trees(tmp_path, tree):
    path = tmp_path / "data" / tree
    if tree.endswith("/"):
        path.mkdir(parents=True)
    else:
        path.parent.mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    with pytest.raises(DataError) as err:
        detect_layout(tmp_path / "data")
    message = str(err.value)
    assert "\n" not in message
    assert all(tree in message for tree in EXPECTED_TREES)
    assert "--dataset mvtec|visa|btad|folder|sample" in message


def _test_items(root: Path, **kwargs) -> list[dict]:
    test = Folder(root, "mybrick", "test", **kwargs)
    return [test.get_data_info(i) for i in range(len(test))]


@pytest.mark.parametrize("mask_dir", ["masks", "ground_truth"])
def test_folder_finds_the_mask_folder_by_itself(own_images, mask_dir):
    root = own_images("folder", mask_dir=mask_dir)
    items = _test_items(root)
    bad = [d for d in items if d["gt_label"] == 1]
    # 3 defect types x 2 images, types from the sub-folders, each with its own mask.
    assert sorted({d["defect_type"] for d in bad}) == ["chip", "dent", "scratch"]
    assert len(bad) == 6
    assert all(
        Path(d["mask_path"])
        == root / "mybrick" / mask_dir / d["defect_type"] / f"{Path(d['img_path']).stem}_mask.png"
        for d in bad
    )
    assert Folder(root, "mybrick", "test").has_masks
    assert not Folder(root, "mybrick", "test", mask_dir=None).has_masks


def test_defects_without_a_mask_are_counted_in_one_warning(own_images, warning_lines):
    root = own_images("folder")
    missing = sorted((root / "mybrick" / "masks" / "dent").glob("*.png"))
    for path in missing:
        path.unlink()
    test = Folder(root, "mybrick", "test")
    Folder(root, "mybrick", "train")  # the same data: no second warning
    lines = warning_lines
    assert not test.has_masks
    assert len(lines) == 1, lines
    assert f"{len(missing)} of 6 anomalous images have no mask" in lines[0]


def test_mask_folder_without_a_match_warns(own_images, warning_lines):
    root = own_images("folder")
    for path in (root / "mybrick" / "masks").rglob("*.png"):
        path.rename(path.with_name("other_" + path.name))
    assert not Folder(root, "mybrick", "test").has_masks
    lines = warning_lines
    assert len(lines) == 1 and "none of the 6 defect images has a mask" in lines[0], lines


def test_normal_only_folder_holds_out_normals(own_images, warning_lines):
    root = own_images("folder", defects=False)
    train = Folder(root, "mybrick", "train")
    test = Folder(root, "mybrick", "test")
    lines = list(warning_lines)
    # 9 normal images: 20 % (2) held out for the test, 7 to train on, no overlap.
    assert (len(train), len(test)) == (7, 2)
    train_paths = {train.get_data_info(i)["img_path"] for i in range(7)}
    test_items = [test.get_data_info(i) for i in range(2)]
    assert all(d["gt_label"] == 0 for d in test_items)
    assert not train_paths & {d["img_path"] for d in test_items}
    assert len(lines) == 1 and "normal-only" in lines[0], lines


def test_a_named_abnormal_folder_that_is_missing_is_still_an_error(own_images):
    root = own_images("folder", defects=False)
    with pytest.raises(DataError, match="abnormal_dir"):
        Folder(root, "mybrick", "test", abnormal_dir="bad")
