"""Folder: a user's own images sorted into normal / abnormal (/ mask) folders.

Paths are relative to ``<data_root>/<category>`` (or to ``data_root`` when no category is
given)::

    good/*                  normal images (train, and test unless normal_test_dir is given)
    defect/*  or defect/<defect_type>/*     anomalous images (test; optional)
    <abnormal_train_dir>/*  labelled anomalous training images (optional, for supervised
                            methods such as SuperSimpleNet; masks matched the same way)
    masks/<stem>[_mask].*  or masks/<defect_type>/<stem>[_mask].*   optional masks
                            (``ground_truth/`` is found too)

Without ``defect/`` the data is normal-only (the first days on a line): the held-out
normal images are the test split, and the report gives their score distribution and
percentile thresholds instead of AUROC.

The resolved split is written to ``metadata.csv`` next to the data so that a person can
see which image went where.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from pathlib import Path

import numpy as np

from adtool.errors import ConfigError, DataError
from adtool.fileio import atomic_write_text
from adtool.registry import DATASETS

from .base import (
    BaseAnomalyDataset,
    find_mask,
    index_by_stem,
    list_images,
    list_subdirs,
    warn_once,
)

METADATA_FILE = "metadata.csv"
METADATA_COLUMNS = ("img_path", "split", "label", "mask_path", "defect_type")
#: ``mask_dir='auto'`` uses the first of these folders found beside ``good/``.
AUTO_MASK_DIRS = ("masks", "ground_truth")


@DATASETS.register_module()
class Folder(BaseAnomalyDataset):
    """A custom dataset from normal, abnormal and (optional) mask folders.

    Normal images are split into train and test by a seeded permutation unless
    ``normal_test_dir`` holds dedicated normal test images. Abnormal images are all test
    images; their defect type is the name of the sub-folder they sit in, or the name of
    ``abnormal_dir`` itself when it is flat. A mask is matched by file stem, with or without
    a ``_mask`` suffix, first in the mirrored sub-folder of ``mask_dir`` and then in
    ``mask_dir`` itself.

    ``metadata.csv`` (columns ``img_path,split,label,mask_path,defect_type``; ``label`` 0/1;
    paths relative to the file) is written atomically next to the data; a read-only folder
    gives a warning and nothing else.

    Args:
        data_root: Folder that holds the category folders (or the image folders when
            ``category`` is None). Defaults to ``'data/folder'``.
        category: Category folder under ``data_root``; None to use ``data_root`` itself, the
            category name then being the folder's name. Defaults to None.
        split: ``'train'`` or ``'test'``. Defaults to ``'train'``.
        pipeline: Transforms applied to each item. Defaults to ``()``.
        normal_dir: Normal images. Defaults to ``'good'``.
        abnormal_dir: Anomalous images (flat or one sub-folder per defect type); None when
            there are none. A missing ``'defect'`` folder means normal-only data (one log
            line); another missing name is an error. Defaults to ``'defect'``.
        mask_dir: Masks of the anomalous images; ``'auto'`` uses ``masks/`` or
            ``ground_truth/`` beside the images when one exists; None ignores masks.
            Defaults to ``'auto'``.
        abnormal_train_dir: Labelled anomalous images for the train split (flat or one
            sub-folder per defect type), for methods that learn from them (SuperSimpleNet's
            supervised mode); their masks are matched in ``mask_dir`` like the test ones.
            None keeps the train split normal-only. Defaults to None.
        normal_test_dir: Normal test images; None to move ``normal_split_ratio`` of
            ``normal_dir`` to test instead. Defaults to None.
        normal_split_ratio: Share of normal images used for test when ``normal_test_dir``
            is None. Defaults to 0.2.
        seed: Seed of the permutation that picks the normal test images. Defaults to 0.
        test_mode: See :class:`BaseAnomalyDataset`. Defaults to False.
        indices: See :class:`BaseAnomalyDataset`. Defaults to None.
        serialize_data: See :class:`BaseAnomalyDataset`. Defaults to True.
        lazy_init: See :class:`BaseAnomalyDataset`. Defaults to False.
        max_refetch: See :class:`BaseAnomalyDataset`. Defaults to 1000.
        holdout: See :class:`BaseAnomalyDataset`. Defaults to None.
    """

    DATASET_NAME = "Folder"
    DATASET_KEY = "folder"
    LAYOUT = "<root>/<category>/{good, defect[/<defect_type>], masks (optional)}"
    FIX_HINT = "or set normal_dir/abnormal_dir/mask_dir to your folder names"

    def __init__(
        self,
        data_root: str | Path = "data/folder",
        category: str | None = None,
        split: str = "train",
        pipeline=(),
        normal_dir: str | Path = "good",
        abnormal_dir: str | Path | None = "defect",
        mask_dir: str | Path | None = "auto",
        abnormal_train_dir: str | Path | None = None,
        normal_test_dir: str | Path | None = None,
        normal_split_ratio: float = 0.2,
        seed: int = 0,
        test_mode: bool = False,
        indices=None,
        serialize_data: bool = True,
        lazy_init: bool = False,
        max_refetch: int = 1000,
        holdout: dict | None = None,
    ) -> None:
        if not 0.0 <= normal_split_ratio < 1.0:
            raise ConfigError(
                f"Folder normal_split_ratio must be in [0, 1), got {normal_split_ratio}"
            )
        self.normal_dir = normal_dir
        self.abnormal_dir = abnormal_dir
        self.mask_dir = mask_dir
        self.abnormal_train_dir = abnormal_train_dir
        self.normal_test_dir = normal_test_dir
        self.normal_split_ratio = normal_split_ratio
        self.seed = seed
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

    def category_name(self, data_root: str | Path) -> str:
        if self.category is None:
            return Path(data_root).resolve().name
        return str(self.category)

    @property
    def category_dir(self) -> Path:
        root = Path(self.data_root)
        return root if self.category is None else root / str(self.category)

    @classmethod
    def categories_on_disk(cls, data_root: Path) -> list[str]:
        """Sub-folders of ``data_root`` that hold a ``good`` folder."""
        return [p.name for p in list_subdirs(data_root) if (p / "good").is_dir()]

    def expected_split_location(self) -> str:
        if self.split == "train":
            dirs = [self.normal_dir, self.abnormal_train_dir]
            return " and ".join(str(self.category_dir / d) for d in dirs if d is not None)
        dirs = [self.normal_test_dir or self.normal_dir, self.abnormal_dir]
        return " and ".join(str(self.category_dir / d) for d in dirs if d is not None)

    def _split_normals(self, normals: list[Path]) -> tuple[list[Path], list[Path]]:
        """Seeded (train, test) split of the normal images."""
        n = len(normals)
        n_test = int(round(n * self.normal_split_ratio))
        if self.normal_split_ratio > 0 and n > 1:
            n_test = min(max(n_test, 1), n - 1)
        test_idx = set(np.random.default_rng(self.seed).permutation(n)[:n_test].tolist())
        train = [p for i, p in enumerate(normals) if i not in test_idx]
        test = [p for i, p in enumerate(normals) if i in test_idx]
        return train, test

    def _mask_root(self, base: Path) -> Path | None:
        """The mask folder: the one named, or with ``'auto'`` the first of
        :data:`AUTO_MASK_DIRS` found in ``base`` (None without one)."""
        if self.mask_dir is None:
            return None
        if str(self.mask_dir) == "auto":
            return next((base / d for d in AUTO_MASK_DIRS if (base / d).is_dir()), None)
        return base / self.mask_dir

    def _abnormal_items(self, base: Path, folder: str | Path | None, split: str) -> list[dict]:
        """Anomalous images of ``base / folder`` (with their masks) as ``split`` items."""
        if folder is None:
            return []
        abnormal = base / folder
        if not abnormal.is_dir():
            if split == "train":
                raise DataError(
                    f"Folder abnormal_train_dir {abnormal} not found; set abnormal_train_dir "
                    f"to the folder of labelled anomalous training images (relative to {base}), "
                    "or abnormal_train_dir=None"
                )
            if str(folder) == "defect":
                warn_once(
                    ("normal only", str(base)),
                    f"Folder {base}: no defect/ folder, normal-only data; the held-out normal "
                    "images give score percentiles and false-alarm rates, no AUROC (add "
                    "defect/ for the full table)",
                )
                return []
            raise DataError(
                f"Folder abnormal_dir {abnormal} not found; set abnormal_dir to the folder of "
                f"anomalous images (relative to {base}), or abnormal_dir=None if there are none"
            )
        mask_root = self._mask_root(base)
        if mask_root is not None and not mask_root.is_dir():
            raise DataError(
                f"Folder mask_dir {mask_root} not found; set mask_dir to the folder of masks "
                f"(relative to {base}), or mask_dir=None if there are none"
            )
        groups = [(abnormal.name, abnormal, None)]
        groups += [(d.name, d, d.name) for d in list_subdirs(abnormal)]
        flat_masks = index_by_stem(mask_root) if mask_root is not None else {}
        items = []
        for defect, folder, sub in groups:
            sub_masks = index_by_stem(mask_root / sub) if mask_root is not None and sub else {}
            for img in list_images(folder):
                mask = find_mask(sub_masks, img.stem) or find_mask(flat_masks, img.stem)
                items.append(self.item(img, split, 1, defect, mask))
        if mask_root is not None and items and not any(d["mask_path"] for d in items):
            warn_once(
                ("no mask matched", str(base)),
                f"Folder {base}: none of the {len(items)} defect images has a mask in "
                f"{mask_root} (matched by file stem, with or without _mask); pixel metrics "
                "are disabled",
            )
        return items

    def scan(self) -> list[dict]:
        self._check_root(Path(self.data_root))
        base = self._check_category_dir() if self.category is not None else self.category_dir
        normal = base / self.normal_dir
        if not normal.is_dir():
            raise DataError(
                f"Folder normal_dir {normal} not found; pass --data-root (and category) so "
                f"that it points at your data, or set normal_dir to the folder of normal images"
            )
        normals = list_images(normal)
        if self.normal_test_dir is not None:
            train, test = normals, list_images(base / self.normal_test_dir)
        else:
            train, test = self._split_normals(normals)
        items = [self.item(p, "train", 0, "good") for p in train]
        items += [self.item(p, "test", 0, "good") for p in test]
        items += self._abnormal_items(base, self.abnormal_train_dir, "train")
        return items + self._abnormal_items(base, self.abnormal_dir, "test")

    def all_items(self) -> list[dict]:
        items = super().all_items()
        self.write_metadata(items)
        return items

    def write_metadata(self, items: list[dict]) -> Path | None:
        """Write ``metadata.csv`` next to the data; warn and return None if it cannot."""
        path = self.category_dir / METADATA_FILE
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(METADATA_COLUMNS)
        for d in items:
            mask = d["mask_path"]
            writer.writerow(
                [
                    Path(os.path.relpath(d["img_path"], path.parent)).as_posix(),
                    d["split"],
                    d["gt_label"],
                    Path(os.path.relpath(mask, path.parent)).as_posix() if mask else "",
                    d["defect_type"],
                ]
            )
        text = buf.getvalue()
        try:
            if path.is_file() and path.read_text(encoding="utf-8") == text:
                return path
            atomic_write_text(path, text)
        except OSError as err:
            warnings.warn(
                f"Folder could not write {path} ({err.strerror or err}); the folder looks "
                f"read-only, carrying on without the metadata file",
                stacklevel=2,
            )
            return None
        return path
