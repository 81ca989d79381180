"""Test setup: one torch thread, no network, adtool registries loaded."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _registries():
    from adtool.registry import register_all_modules

    register_all_modules()


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """Two sample categories at 64 px: 6 train, 3 good + 2 per defect type in test."""
    from adtool.datasets import make_sample_dataset

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
