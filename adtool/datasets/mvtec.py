"""MVTec AD: 15 industrial categories with pixel masks.

Bergmann et al., "MVTec AD - A Comprehensive Real-World Dataset for Unsupervised Anomaly
Detection", CVPR 2019. Layout::

    <root>/<category>/train/good/*.png
    <root>/<category>/test/<defect>/*.png            (defect 'good' = normal)
    <root>/<category>/ground_truth/<defect>/<stem>_mask.png
"""

from __future__ import annotations

from pathlib import Path

from adtool.registry import DATASETS

from .base import BaseAnomalyDataset, find_mask, index_by_stem, list_images, list_subdirs


@DATASETS.register_module()
class MVTecAD(BaseAnomalyDataset):
    """One category of MVTec AD (or any folder in the MVTec layout).

    A category not in :attr:`CATEGORIES` is accepted when its folder has the MVTec layout;
    :meth:`list_categories` reports only the official categories present on disk.

    Args:
        data_root: Folder that holds the category folders. Defaults to ``'data/mvtec'``.
        category: Category name, e.g. ``'bottle'``.
        split: ``'train'`` or ``'test'``. Defaults to ``'train'``.
        pipeline: Transforms applied to each item. Defaults to ``()``.
        test_mode: See :class:`BaseAnomalyDataset`. Defaults to False.
        indices: See :class:`BaseAnomalyDataset`. Defaults to None.
        serialize_data: See :class:`BaseAnomalyDataset`. Defaults to True.
        lazy_init: See :class:`BaseAnomalyDataset`. Defaults to False.
        max_refetch: See :class:`BaseAnomalyDataset`. Defaults to 1000.
        holdout: See :class:`BaseAnomalyDataset`. Defaults to None.
    """

    CATEGORIES = (
        "bottle",
        "cable",
        "capsule",
        "carpet",
        "grid",
        "hazelnut",
        "leather",
        "metal_nut",
        "pill",
        "screw",
        "tile",
        "toothbrush",
        "transistor",
        "wood",
        "zipper",
    )
    DATASET_NAME = "MVTec AD"
    DATASET_KEY = "mvtec"
    DEFAULT_ROOT = "data/mvtec"
    LAYOUT = "<root>/<category>/{train/good, test/<defect>, ground_truth/<defect>/<stem>_mask.png}"

    @classmethod
    def categories_on_disk(cls, data_root: Path) -> list[str]:
        return [c for c in cls.CATEGORIES if (data_root / c / "train" / "good").is_dir()]

    def expected_split_location(self) -> str:
        sub = "train/good" if self.split == "train" else "test/<defect>"
        return str(self.category_dir / sub)

    def scan(self) -> list[dict]:
        cat_dir = self._check_category_dir()
        items = [self.item(p, "train", 0, "good") for p in list_images(cat_dir / "train" / "good")]
        for defect_dir in list_subdirs(cat_dir / "test"):
            defect = defect_dir.name
            masks = index_by_stem(cat_dir / "ground_truth" / defect)
            for img in list_images(defect_dir):
                if defect == "good":
                    items.append(self.item(img, "test", 0, "good"))
                else:
                    mask = find_mask(masks, img.stem, suffixes=("_mask",))
                    items.append(self.item(img, "test", 1, defect, mask))
        return items
