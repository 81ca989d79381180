"""The sample data every quality test reads: the easy and the hard categories, seed 0."""

import pytest

from adtool.datasets import make_sample_dataset
from adtool.datasets.synthetic import HARD_SAMPLE_CATEGORIES, SAMPLE_CATEGORIES


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory):
    """``python tools/make_sample_data.py`` plus ``--hard``: disk, fabric, tiles, twill, washer.

    Generated once per session (about 15 s) and shared by the quality test files.
    """
    return make_sample_dataset(
        tmp_path_factory.mktemp("sample"),
        seed=0,
        categories=(*SAMPLE_CATEGORIES, *HARD_SAMPLE_CATEGORIES),
    )
