"""The procedurally generated sample dataset (MVTec layout, categories found on disk).

Create it with ``python tools/make_sample_data.py`` (see :func:`make_sample_dataset`).
"""

from __future__ import annotations

from pathlib import Path

from adtool.registry import DATASETS

from .mvtec import MVTecAD
from .synthetic import make_sample_dataset

__all__ = ["SampleDataset", "make_sample_dataset"]


@DATASETS.register_module()
class SampleDataset(MVTecAD):
    """One category of the generated sample dataset: MVTec layout, any category name.

    Args:
        data_root: Folder written by ``tools/make_sample_data.py``. Defaults to
            ``'data/sample'``.
        category: Category name, e.g. ``'disk'``.
        split: ``'train'`` or ``'test'``. Defaults to ``'train'``.
        pipeline: Transforms applied to each item. Defaults to ``()``.
        test_mode: See :class:`BaseAnomalyDataset`. Defaults to False.
        indices: See :class:`BaseAnomalyDataset`. Defaults to None.
        serialize_data: See :class:`BaseAnomalyDataset`. Defaults to True.
        lazy_init: See :class:`BaseAnomalyDataset`. Defaults to False.
        max_refetch: See :class:`BaseAnomalyDataset`. Defaults to 1000.
        holdout: See :class:`BaseAnomalyDataset`. Defaults to None.
    """

    DATASET_NAME = "sample dataset"
    DATASET_KEY = "sample"
    DEFAULT_ROOT = "data/sample"
    FIX_HINT = "or run `python tools/make_sample_data.py --out <root>` to generate it"

    @classmethod
    def categories_on_disk(cls, data_root: Path) -> list[str]:
        return [p.name for p in sorted(data_root.iterdir()) if (p / "train" / "good").is_dir()]
