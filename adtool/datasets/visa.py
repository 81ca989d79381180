"""VisA (Visual Anomaly): 12 objects, split and labels from the release's CSV file.

Zou et al., "SPot-the-Difference Self-Supervised Pre-training for Anomaly Detection and
Segmentation", ECCV 2022. The split file (``split_csv/1cls.csv`` in the release) has the
columns ``object,split,label,image,mask``; ``label`` is ``normal`` or ``anomaly`` and the
paths are relative to the data root. VisA masks hold class indices, so every pixel > 0 is
a defect (``LoadAnomalyMask`` binarises with > 0).
"""

from __future__ import annotations

import csv
from pathlib import Path

from adtool.errors import DataError
from adtool.registry import DATASETS

from .base import BaseAnomalyDataset

_COLUMNS = ("object", "split", "label", "image", "mask")
_LABELS = {"normal": 0, "anomaly": 1}


def read_split_csv(csv_path: Path) -> list[dict[str, str]]:
    """Rows of a VisA split file, checked for the required columns.

    Raises:
        DataError: If the file is missing or lacks a column.
    """
    if not csv_path.is_file():
        raise DataError(
            f"VisA split file {csv_path} not found; pass --data-root pointing at the VisA folder "
            f"that holds split_csv/1cls.csv (from the VisA release), or set split_csv"
        )
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(
                f"VisA split file {csv_path} lacks the column(s) {', '.join(missing)}; "
                f"expected the header {','.join(_COLUMNS)}"
            )
        return [{k: (v or "").strip() for k, v in row.items() if k} for row in reader]


@DATASETS.register_module()
class VisA(BaseAnomalyDataset):
    """One object of VisA, read from its split CSV.

    Args:
        data_root: VisA folder (holds the object folders and ``split_csv/``). Defaults to
            ``'data/visa'``.
        category: Object name, e.g. ``'candle'``.
        split: ``'train'`` or ``'test'``. Defaults to ``'train'``.
        pipeline: Transforms applied to each item. Defaults to ``()``.
        split_csv: Split file, relative to ``data_root`` unless absolute. Defaults to
            ``'split_csv/1cls.csv'``.
        test_mode: See :class:`BaseAnomalyDataset`. Defaults to False.
        indices: See :class:`BaseAnomalyDataset`. Defaults to None.
        serialize_data: See :class:`BaseAnomalyDataset`. Defaults to True.
        lazy_init: See :class:`BaseAnomalyDataset`. Defaults to False.
        max_refetch: See :class:`BaseAnomalyDataset`. Defaults to 1000.
        holdout: See :class:`BaseAnomalyDataset`. Defaults to None.
    """

    CATEGORIES = (
        "candle",
        "capsules",
        "cashew",
        "chewinggum",
        "fryum",
        "macaroni1",
        "macaroni2",
        "pcb1",
        "pcb2",
        "pcb3",
        "pcb4",
        "pipe_fryum",
    )
    DATASET_NAME = "VisA"
    DATASET_KEY = "visa"
    DEFAULT_ROOT = "data/visa"
    LAYOUT = "<root>/split_csv/1cls.csv with columns object,split,label,image,mask"
    FIX_HINT = "as unpacked from the VisA release"
    DEFAULT_SPLIT_CSV = "split_csv/1cls.csv"

    def __init__(
        self,
        data_root: str | Path | None = None,
        category: str | None = None,
        split: str = "train",
        pipeline=(),
        split_csv: str | Path = DEFAULT_SPLIT_CSV,
        test_mode: bool = False,
        indices=None,
        serialize_data: bool = True,
        lazy_init: bool = False,
        max_refetch: int = 1000,
        holdout: dict | None = None,
    ) -> None:
        self.split_csv = split_csv
        super().__init__(
            data_root=data_root,
            category=category,
            split=split,
            pipeline=pipeline,
            test_mode=test_mode,
            indices=indices,
            serialize_data=serialize_data,
            lazy_init=lazy_init,
            max_refetch=max_refetch,
            holdout=holdout,
        )

    @classmethod
    def categories_on_disk(cls, data_root: Path) -> list[str]:
        rows = read_split_csv(data_root / cls.DEFAULT_SPLIT_CSV)
        return sorted({r["object"] for r in rows if (data_root / r["object"]).is_dir()})

    def expected_split_location(self) -> str:
        return f"{self.csv_path} (rows with object={self.category}, split={self.split})"

    @property
    def csv_path(self) -> Path:
        """The split file's path."""
        return Path(self.data_root) / self.split_csv

    def scan(self) -> list[dict]:
        root = Path(self.data_root)
        self._check_root(root)
        category = self.category_name(root)
        rows = read_split_csv(self.csv_path)
        objects = sorted({r["object"] for r in rows})
        rows = [r for r in rows if r["object"] == category]
        if not rows:
            raise DataError(
                f"VisA category '{category}' has no rows in {self.csv_path}; objects listed "
                f"there: {', '.join(objects) or 'none'}"
            )
        items, missing = [], []
        for r in rows:
            label = _LABELS.get(r["label"].lower())
            if label is None or r["split"] not in ("train", "test"):
                raise DataError(
                    f"VisA split file {self.csv_path} has a row with split={r['split']!r}, "
                    f"label={r['label']!r} for {r['image']}; expected split train|test and "
                    f"label normal|anomaly"
                )
            img = root / r["image"]
            mask = root / r["mask"] if r["mask"] and label == 1 else None
            missing += [p for p in (img, mask) if p is not None and not p.is_file()]
            defect = "anomaly" if label else "good"
            items.append(self.item(img, r["split"], label, defect, mask))
        if missing:
            raise DataError(
                f"VisA category '{category}': {len(missing)} file(s) listed in {self.csv_path} "
                f"are missing, e.g. {missing[0]}; check that --data-root is the folder the "
                f"CSV paths are relative to"
            )
        return items
