"""The datasets' seeded hold-out of normal training images (``holdout=dict(...)``): the
two parts are complementary, the split is reproducible, and every layout has it."""

import numpy as np
import pytest

from adtool.datasets.base import held_out_indices
from adtool.errors import ConfigError, DataError
from adtool.registry import DATASETS

# layout -> (dataset type, category) of the tiny sample disk data rewritten in that layout.
LAYOUTS = {
    "mvtec": ("MVTecAD", "disk"),
    "sample": ("SampleDataset", "disk"),
    "folder": ("Folder", "mybrick"),
    "btad": ("BTAD", "01"),
    "visa": ("VisA", "disk"),
}


def paths(kind: str, root, category: str, **kwargs) -> list[str]:
    dataset = DATASETS.build(dict(type=kind, data_root=str(root), category=category, **kwargs))
    return [dataset.get_data_info(i)["img_path"] for i in range(len(dataset))]


@pytest.fixture(scope="module")
def roots(tiny_data, tmp_path_factory):
    from tests.conftest import sample_as

    base = tmp_path_factory.mktemp("holdout_layouts")
    out = {"mvtec": tiny_data, "sample": tiny_data}
    for layout in ("folder", "btad", "visa"):
        out[layout] = sample_as(layout, tiny_data, base / layout)
    return out


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_the_parts_are_complementary_in_every_layout(roots, layout):
    kind, category = LAYOUTS[layout]
    every = paths(kind, roots[layout], category)
    rest = paths(kind, roots[layout], category, holdout=dict(fraction=0.5, keep="rest"))
    held = paths(kind, roots[layout], category, holdout=dict(fraction=0.5, keep="held"))
    assert not set(rest) & set(held)
    assert sorted(rest + held) == sorted(every)
    # Folder moves 20 % of the normal images to test first: 5 of 6 remain, 2 held (round 2.5).
    assert len(held) == int(round(0.5 * len(every)))
    # The held indices of the path-sorted training list, as the documented function gives.
    want = [sorted(every)[i] for i in held_out_indices(len(every), 0.5, 0)]
    assert sorted(held) == want


def test_the_split_is_seeded(roots):
    kind, category = LAYOUTS["sample"]
    first = paths(kind, roots["sample"], category, holdout=dict(fraction=0.5, seed=3, keep="held"))
    again = paths(kind, roots["sample"], category, holdout=dict(fraction=0.5, seed=3, keep="held"))
    assert first == again
    other = paths(kind, roots["sample"], category, holdout=dict(fraction=0.5, seed=4, keep="held"))
    assert other != first  # another seed, another draw
    # numpy's PCG64 permutation: fixed across machines and numpy versions.
    assert held_out_indices(40, 0.2, 0) == sorted(
        np.random.default_rng(0).permutation(40)[:8].tolist()
    )
    assert held_out_indices(1, 0.2) == [] and len(held_out_indices(3, 0.01)) == 1
    assert len(held_out_indices(3, 0.99)) == 2  # never every image


def test_indices_apply_to_the_part_kept(roots):
    kind, category = LAYOUTS["sample"]
    rest = paths(kind, roots["sample"], category, holdout=dict(keep="rest"))
    first_two = paths(kind, roots["sample"], category, holdout=dict(keep="rest"), indices=2)
    assert first_two == rest[:2] and len(rest) == 5  # 6 images, round(1.2) = 1 held


def test_bad_holdouts_are_one_line_errors(roots, tiny_data):
    kind, category = LAYOUTS["sample"]
    root = roots["sample"]
    with pytest.raises(ConfigError, match="split='train' only"):
        paths(kind, root, category, split="test", holdout=dict(keep="held"))
    with pytest.raises(ConfigError, match=r"fraction must be in \(0, 1\)"):
        paths(kind, root, category, holdout=dict(fraction=1.0))
    with pytest.raises(ConfigError, match="unknown key 'part'"):
        paths(kind, root, category, holdout=dict(part="held"))
    with pytest.raises(ConfigError, match="keep must be 'rest'"):
        paths(kind, root, category, holdout=dict(keep="test"))
    one = DATASETS.build(
        dict(type=kind, data_root=str(root), category=category, indices=None, lazy_init=True)
    )
    assert len(one.load_data_list()) == 6
    with pytest.raises(DataError, match="holdout needs two or more"):
        DATASETS.build(
            dict(type=kind, data_root=str(root), category=category, holdout={})
        )._hold_out(one.load_data_list()[:1])
