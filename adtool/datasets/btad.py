"""BTAD (beanTech Anomaly Detection): three industrial products, '01', '02', '03'.

Mishra et al., "VT-ADL: A Vision Transformer Network for Image Anomaly Detection and
Localization", ISIE 2021. Layout::

    <root>/<category>/train/ok/*
    <root>/<category>/test/ok/*        (normal)
    <root>/<category>/test/ko/*        (anomalous, defect type 'ko')
    <root>/<category>/ground_truth/ko/<stem>.*   (masks, matched by file stem)
"""

from __future__ import annotations

from pathlib import Path

from adtool.registry import DATASETS

from .base import BaseAnomalyDataset, find_mask, index_by_stem, list_images


@DATASETS.register_module()
class BTAD(BaseAnomalyDataset):
    """One category of BTAD.

    Args:
        data_root: Folder that holds ``01``, ``02``, ``03``. Defaults to ``'data/btad'``.
        category: ``'01'``, ``'02'`` or ``'03'``.
        split: ``'train'`` or ``'test'``. Defaults to ``'train'``.
        pipeline: Transforms applied to each item. Defaults to ``()``.
        test_mode: See :class:`BaseAnomalyDataset`. Defaults to False.
        indices: See :class:`BaseAnomalyDataset`. Defaults to None.
        serialize_data: See :class:`BaseAnomalyDataset`. Defaults to True.
        lazy_init: See :class:`BaseAnomalyDataset`. Defaults to False.
        max_refetch: See :class:`BaseAnomalyDataset`. Defaults to 1000.
        holdout: See :class:`BaseAnomalyDataset`. Defaults to None.
    """

    CATEGORIES = ("01", "02", "03")
    DATASET_NAME = "BTAD"
    DATASET_KEY = "btad"
    DEFAULT_ROOT = "data/btad"
    LAYOUT = "<root>/<category>/{train/ok, test/ok, test/ko, ground_truth/ko}"
    FIX_HINT = "(BTAD categories are '01', '02', '03')"

    def category_name(self, data_root: str | Path) -> str:
        # A YAML/CLI value of 1 means '01'.
        if isinstance(self.category, int):
            self.category = f"{self.category:02d}"
        return super().category_name(data_root)

    @classmethod
    def categories_on_disk(cls, data_root: Path) -> list[str]:
        return [c for c in cls.CATEGORIES if (data_root / c / "train" / "ok").is_dir()]

    def expected_split_location(self) -> str:
        sub = "train/ok" if self.split == "train" else "test/{ok,ko}"
        return str(self.category_dir / sub)

    def scan(self) -> list[dict]:
        cat_dir = self._check_category_dir()
        items = [self.item(p, "train", 0, "good") for p in list_images(cat_dir / "train" / "ok")]
        items += [self.item(p, "test", 0, "good") for p in list_images(cat_dir / "test" / "ok")]
        masks = index_by_stem(cat_dir / "ground_truth" / "ko")
        for img in list_images(cat_dir / "test" / "ko"):
            mask = find_mask(masks, img.stem, suffixes=("", "_mask"))
            items.append(self.item(img, "test", 1, "ko", mask))
        return items
