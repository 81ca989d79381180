import pytest

from adtool.datasets import make_sample_dataset


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """Two sample categories at 64 px: 6 train, 3 good + 2 per defect type in test."""
    root = tmp_path_factory.mktemp("tiny_sample")
    return make_sample_dataset(
        root,
        seed=0,
        size=64,
        n_train=6,
        n_test_good=3,
        n_test_defect=2,
        categories=["tiles", "disk"],
    )
