"""The procedural sample dataset: determinism, layout, defect sizes and the CLI tool."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from adtool.datasets import SAMPLE_CATEGORIES, SAMPLE_DEFECTS, SampleDataset, make_sample_dataset
from adtool.datasets.synthetic import _GENERATORS, HARD_SAMPLE_CATEGORIES, _seed, sample_image

REPO = Path(__file__).resolve().parents[2]
TINY = dict(size=64, n_train=3, n_test_good=2, n_test_defect=2)

# sha256 (first 16 hex digits) of the decoded pixels of the easy categories as the generator
# wrote them before the hard categories were added: `make demo` data must never change.
# Per category, the TINY dataset with seed 0 (relative paths and pixels, sorted by path).
EASY_TINY_DIGESTS = {
    "disk": "16d18e8ef7c20b83",
    "fabric": "318fac27520d38f5",
    "tiles": "9bae2e677ed6ab2c",
}
# Single 256 px images of the default dataset (seed 0): (category, split, defect, index)
# -> (image digest, mask digest).
EASY_256_DIGESTS = {
    ("disk", "train", "good", 0): ("9bc6f324205c1391", None),
    ("disk", "test", "scratch", 3): ("34b506469b4e6635", "8b6182821484c029"),
    ("fabric", "test", "good", 7): ("fdb2c9b85408efa1", None),
    ("fabric", "test", "stain", 3): ("0054c5be2321fa4d", "387b8cd86a8720f3"),
    ("tiles", "train", "good", 39): ("184c8b43920b5656", None),
    ("tiles", "test", "missing", 3): ("ddcabcf48b904e29", "522878e9b2320935"),
}


def file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def digest(arr: np.ndarray | None) -> str | None:
    return None if arr is None else hashlib.sha256(arr.tobytes()).hexdigest()[:16]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_sample_dataset(tmp_path_factory.mktemp("sample") / "a", seed=0, **TINY)


@pytest.fixture(scope="module")
def tiny_hard(tmp_path_factory) -> Path:
    return make_sample_dataset(
        tmp_path_factory.mktemp("sample") / "hard",
        seed=0,
        categories=HARD_SAMPLE_CATEGORIES,
        **TINY,
    )


def test_easy_categories_are_generated_as_before(tiny):
    for category, expected in EASY_TINY_DIGESTS.items():
        h = hashlib.sha256()
        for p in sorted((tiny / category).rglob("*.png")):
            h.update(str(p.relative_to(tiny)).encode())
            h.update(np.asarray(Image.open(p)).tobytes())
        assert h.hexdigest()[:16] == expected, category
    for (category, split, defect, i), expected in EASY_256_DIGESTS.items():
        seed = int(_seed(0, category, split, defect, i).generate_state(1)[0])
        img, mask = sample_image(category, None if defect == "good" else defect, seed, 256)
        assert (digest(img), digest(mask)) == expected, (category, split, defect, i)


def test_same_seed_gives_identical_bytes(tiny, tmp_path):
    again = make_sample_dataset(tmp_path / "b", seed=0, **TINY)
    assert file_bytes(tiny) == file_bytes(again)
    other = make_sample_dataset(tmp_path / "c", seed=1, **TINY)
    assert file_bytes(other).keys() == file_bytes(tiny).keys()
    assert file_bytes(other) != file_bytes(tiny)


@pytest.mark.parametrize("hard", [False, True])
def test_layout_and_dataset_counts(hard, tiny, tiny_hard):
    root, categories = (tiny_hard, HARD_SAMPLE_CATEGORIES) if hard else (tiny, SAMPLE_CATEGORIES)
    assert SampleDataset.list_categories(root) == sorted(categories)
    for category in categories:
        defects = SAMPLE_DEFECTS[category]
        assert len(defects) == 3
        train = SampleDataset(root, category, "train")
        test = SampleDataset(root, category, "test")
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


def test_hard_masks_are_binary_and_small(tiny_hard):
    fractions = []
    for mask_path in tiny_hard.rglob("*_mask.png"):
        mask = np.asarray(Image.open(mask_path))
        assert mask.shape == (64, 64) and set(np.unique(mask)) <= {0, 255}
        fractions.append((mask > 0).mean())
    assert len(fractions) == 2 * 3 * 2
    assert 0.0005 <= min(fractions) and max(fractions) <= 0.03


@pytest.mark.parametrize("size", [64, 256])
@pytest.mark.parametrize(
    ("category", "defect"), [(c, d) for c in HARD_SAMPLE_CATEGORIES for d in SAMPLE_DEFECTS[c]]
)
def test_hard_masks_cover_their_defects(category, defect, size):
    """The defect image minus the normal image of the same seed changes inside the mask only.

    The two also differ in sensor noise (std 3 per channel). Blurred (sigma 1) and averaged
    over the channels, the noise stays below 3 grey levels in the mean change and below 60
    in the mean squared change; brightness defects pass the first, texture defects (ribs
    rubbed flat, another thread spacing: same mean colour) the second.
    """
    for seed in range(4):
        img, mask = _GENERATORS[category](np.random.default_rng(seed), size, defect)
        normal, _ = _GENERATORS[category](np.random.default_rng(seed), size, None)
        diff = img.astype(float) - normal
        mean_change = np.abs(ndimage.gaussian_filter(diff.mean(-1), 1.0))
        energy = ndimage.gaussian_filter((diff**2).mean(-1), 1.0)
        changed = (mean_change > 3.0) | (energy > 60.0)
        near = ndimage.binary_dilation(mask, iterations=2)
        assert mask.any() and changed[mask].mean() > 0.4, (seed, changed[mask].mean())
        assert changed[~near].mean() < 0.005, (seed, changed[~near].mean())


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
    assert tool.main(["--out", str(tmp_path), "--hard", "--categories", "disk"]) == 2


def test_tool_hard_writes_the_hard_categories(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "make_sample_data", REPO / "tools/make_sample_data.py"
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    argv = ["--out", str(tmp_path), "--size", "48", "--n-train", "2", "--n-test-good", "1"]
    assert tool.main([*argv, "--n-test-defect", "1", "--hard"]) == 0
    assert SampleDataset.list_categories(tmp_path) == sorted(HARD_SAMPLE_CATEGORIES)
    assert len(SampleDataset(tmp_path, "washer", "test")) == 1 + 3
    with pytest.raises(SystemExit):
        tool.parse_args(["--help"])
    help_text = capsys.readouterr().out
    assert "--hard" in help_text and all(c in help_text for c in HARD_SAMPLE_CATEGORIES)


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
