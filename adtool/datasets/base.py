"""The base class of every anomaly-detection dataset and the file helpers they share.

A dataset scans its folders (or split file) once, in :meth:`BaseAnomalyDataset.load_data_list`,
and yields one ``data_info`` dict per image::

    {'img_path': str, 'mask_path': str | None, 'gt_label': 0 | 1,
     'defect_type': str ('good' for normal images), 'category': str, 'has_masks': bool}

``has_masks`` is the dataset-wide flag repeated on each item so that ``LoadAnomalyMask`` can
tell "a normal image of a dataset with masks" (all-zero mask) from "a dataset without masks"
(no ``gt_mask`` at all).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from PIL import Image

from adtool.errors import ConfigError, DataError
from adtool.registry import TRANSFORMS

IMG_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
SPLITS = ("train", "test")
SAMPLE_DATA_HINT = "or run `python tools/make_sample_data.py` for sample data"
#: ``holdout=dict(keep=...)``: the images a model is fitted on, or the held-out ones.
HOLDOUT_PARTS = ("rest", "held")


def check_holdout(holdout, owner: str = "dataset") -> dict | None:
    """``holdout`` with its defaults filled in (``fraction=0.2, seed=0, keep='rest'``), or
    None.

    Raises:
        ConfigError: for an unknown key, a fraction outside (0, 1) or an unknown part.
    """
    if holdout is None:
        return None
    if not isinstance(holdout, dict):
        raise ConfigError(
            f"{owner} holdout must be dict(fraction=0.2, seed=0, keep='rest'|'held'), "
            f"got {holdout!r}"
        )
    unknown = sorted(set(holdout) - {"fraction", "seed", "keep"})
    if unknown:
        raise ConfigError(
            f"{owner} holdout has unknown key '{unknown[0]}'; it takes fraction, seed and keep"
        )
    spec = {"fraction": 0.2, "seed": 0, "keep": "rest", **holdout}
    fraction = spec["fraction"]
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
        raise ConfigError(f"{owner} holdout fraction must be in (0, 1), got {fraction!r}")
    if spec["keep"] not in HOLDOUT_PARTS:
        raise ConfigError(
            f"{owner} holdout keep must be 'rest' (the images to fit on) or 'held' (the "
            f"held-out ones), got {spec['keep']!r}"
        )
    if isinstance(spec["seed"], bool) or not isinstance(spec["seed"], int):
        raise ConfigError(f"{owner} holdout seed must be an integer, got {spec['seed']!r}")
    return {"fraction": float(fraction), "seed": int(spec["seed"]), "keep": spec["keep"]}


def held_out_indices(n: int, fraction: float, seed: int = 0) -> list[int]:
    """Sorted indices of the ``round(fraction * n)`` items held out of ``n`` (at least one,
    at most ``n - 1``), drawn by a permutation seeded with ``seed``.

    The same ``n``, ``fraction`` and ``seed`` give the same indices on every machine
    (numpy's PCG64 generator).
    """
    if n < 2:
        return []
    count = min(max(int(round(fraction * n)), 1), n - 1)
    return sorted(np.random.default_rng(seed).permutation(n)[:count].tolist())


def is_image_file(path: str | Path) -> bool:
    """Whether ``path`` has one of :data:`IMG_EXTENSIONS` (case-insensitive)."""
    return Path(path).suffix.lower() in IMG_EXTENSIONS


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name; empty if it does not exist."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))


def list_subdirs(folder: str | Path) -> list[Path]:
    """Sub-folders of ``folder`` (hidden ones skipped), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def index_by_stem(folder: str | Path) -> dict[str, Path]:
    """Image files directly inside ``folder`` keyed by file stem (first name wins)."""
    index: dict[str, Path] = {}
    for path in list_images(folder):
        index.setdefault(path.stem, path)
    return index


def find_mask(
    index: dict[str, Path], stem: str, suffixes: Sequence[str] = ("_mask", "")
) -> Path | None:
    """The mask named ``<stem><suffix>.<any image extension>`` in an :func:`index_by_stem`.

    Args:
        index: Masks of one folder, from :func:`index_by_stem`.
        stem: File name of the image without its extension.
        suffixes: Name endings to try in order. Defaults to ``('_mask', '')``.

    Returns:
        The first match in ``suffixes`` order, or None.
    """
    for suffix in suffixes:
        match = index.get(stem + suffix)
        if match is not None:
            return match
    return None


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


_WARNED: set[tuple] = set()


def warn_once(key: tuple, message: str) -> None:
    """Log ``message`` as one warning line, once per process for ``key``.

    The train and the test dataset of a category scan the same folders, so a problem of
    the data would otherwise be reported once per split; a log line (not ``warnings``)
    reaches the run's log file and carries no Python source line.
    """
    if key in _WARNED:
        return
    _WARNED.add(key)
    print_log(message, logger="current", level=logging.WARNING)


def _image_size(path: str) -> tuple[int, int] | None:
    """(width, height) from the file header, or None when it cannot be read (the loader
    reports unreadable files)."""
    try:
        with Image.open(path) as image:
            return image.size
    except OSError:
        return None


class BaseAnomalyDataset(BaseDataset):
    """A split of one category of an anomaly-detection dataset.

    Subclasses implement :meth:`scan`, which returns the items of both splits, and
    :meth:`categories_on_disk`. The base class validates the root and the split, sorts the
    items by path, decides ``has_masks`` and keeps the requested split.

    Args:
        data_root: Folder that holds the category folders. Defaults to the class's
            ``DEFAULT_ROOT`` (e.g. ``data/mvtec``).
        category: Category (product) name. Required unless the subclass says otherwise.
        split: ``'train'`` (normal images only) or ``'test'``. Defaults to ``'train'``.
        pipeline: Transforms (config dicts or callables) applied to each item.
            Defaults to ``()``.
        test_mode: mmengine's flag: a pipeline returning None is an error instead of a
            refetch. Defaults to False.
        indices: Keep only these items (or the first ``n`` if an int). Defaults to None.
        holdout: ``dict(fraction=0.2, seed=0, keep='rest'|'held')``: split the normal
            training images (sorted by path) by a seeded permutation into a held-out
            ``fraction`` and the rest, and keep one part: ``'rest'`` to fit a model on,
            ``'held'`` for statistics on normal images that model never saw (the
            ensemble's calibration). The same fraction and seed give complementary parts.
            Anomalous training images (Folder's ``abnormal_train_dir``) always stay in
            ``'rest'``; ``indices`` then applies to the part kept. Train split only.
            Defaults to None (every training image).
        serialize_data: Store the item list as one numpy buffer (saves memory in
            dataloader workers). Defaults to True.
        lazy_init: Defer scanning the folders until first use. Defaults to False.
        max_refetch: Retries when the pipeline returns None. Defaults to 1000.
    """

    #: Human-readable dataset name used in messages.
    DATASET_NAME = "anomaly"
    #: Short name stored in ``metainfo['dataset']``.
    DATASET_KEY = "anomaly"
    #: Describes the expected layout in error messages.
    LAYOUT = "<root>/<category>/..."
    #: ``data_root`` when the config gives none.
    DEFAULT_ROOT: str | None = None
    #: Extra advice appended to "not found" errors.
    FIX_HINT = SAMPLE_DATA_HINT
    METAINFO: dict = dict()

    def __init__(
        self,
        data_root: str | Path | None = None,
        category: str | None = None,
        split: str = "train",
        pipeline: Sequence[dict | Callable] = (),
        test_mode: bool = False,
        indices: int | Sequence[int] | None = None,
        serialize_data: bool = True,
        lazy_init: bool = False,
        max_refetch: int = 1000,
        holdout: dict | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ConfigError(
                f"{type(self).__name__} split must be 'train' or 'test', got {split!r}"
            )
        if data_root is None:
            if self.DEFAULT_ROOT is None:
                raise ConfigError(f"{type(self).__name__} needs data_root; pass --data-root")
            data_root = self.DEFAULT_ROOT
        self.holdout = check_holdout(holdout, type(self).__name__)
        if self.holdout is not None and split != "train":
            raise ConfigError(
                f"{type(self).__name__} holdout applies to split='train' only (the test split "
                "is never held out); remove holdout from the test dataset"
            )
        self.category = category
        self.split = split
        built = [TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline]
        super().__init__(
            data_root=str(data_root),
            metainfo=dict(
                dataset=self.DATASET_KEY, category=self.category_name(data_root), has_masks=None
            ),
            pipeline=built,
            test_mode=test_mode,
            indices=indices,
            serialize_data=serialize_data,
            lazy_init=lazy_init,
            max_refetch=max_refetch,
        )

    @classmethod
    def _load_metainfo(cls, metainfo: dict | None = None) -> dict:
        # mmengine's version tries to open every string value as a meta file.
        return {**copy.deepcopy(cls.METAINFO), **(dict(metainfo) if metainfo else {})}

    # -- what subclasses provide ---------------------------------------------------------

    def scan(self) -> list[dict]:
        """Items of both splits, each a ``data_info`` dict with an extra ``split`` key."""
        raise NotImplementedError

    @classmethod
    def categories_on_disk(cls, data_root: Path) -> list[str]:
        """Category names found under an existing ``data_root``."""
        raise NotImplementedError

    def expected_split_location(self) -> str:
        """Where images of ``self.split`` were looked for, for the empty-split error."""
        return f"{self.category_dir}"

    # -- shared behaviour ----------------------------------------------------------------

    @classmethod
    def list_categories(cls, data_root: str | Path) -> list[str]:
        """Sorted category names present under ``data_root``.

        Raises:
            DataError: If ``data_root`` is missing or holds no category.
        """
        root = Path(data_root)
        cls._check_root(root)
        categories = sorted(cls.categories_on_disk(root))
        if not categories:
            raise DataError(
                f"no {cls.DATASET_NAME} categories found under {root} (expected {cls.LAYOUT}); "
                f"pass --data-root pointing at the folder that holds the category folders, "
                f"{cls.FIX_HINT}"
            )
        return categories

    @classmethod
    def _check_root(cls, root: Path) -> None:
        if not root.is_dir() or _is_empty_dir(root):
            state = "is empty" if root.is_dir() else "does not exist"
            raise DataError(
                f"{cls.DATASET_NAME} data root {root} {state}; pass --data-root pointing at the "
                f"folder that holds the category folders, {cls.FIX_HINT}"
            )

    def category_name(self, data_root: str | Path) -> str:
        """The category name recorded in items and metainfo."""
        if self.category is None:
            raise ConfigError(
                f"{type(self).__name__} needs a category; "
                f"{self._available_categories_text(data_root)}"
            )
        return str(self.category)

    def _available_categories_text(self, data_root: str | Path) -> str:
        try:
            found = self.list_categories(data_root)
        except DataError:
            return f"none found under {data_root}"
        return f"found under {data_root}: {', '.join(found)}"

    @property
    def category_dir(self) -> Path:
        """``<data_root>/<category>``."""
        return Path(self.data_root) / self.category_name(self.data_root)

    def _check_category_dir(self) -> Path:
        """Return the category folder or raise a :class:`DataError` that says how to fix it."""
        root = Path(self.data_root)
        self._check_root(root)
        cat_dir = self.category_dir
        if not cat_dir.is_dir() or _is_empty_dir(cat_dir):
            raise DataError(
                f"{self.DATASET_NAME} category '{self.category}' not found at {cat_dir} "
                f"({self._available_categories_text(root)}); pass --data-root pointing at the "
                f"folder that holds the category folders, {self.FIX_HINT}"
            )
        return cat_dir

    @property
    def has_masks(self) -> bool:
        """Whether every anomalous image of the category has a pixel mask."""
        self.full_init()
        return bool(self._metainfo["has_masks"])

    def all_items(self) -> list[dict]:
        """Items of both splits, sorted by path, with ``mask_path`` and ``has_masks`` settled.

        A category where only some anomalous images have masks is treated as having none
        (with a warning), so that pixel metrics never see a mix of known and unknown masks.
        """
        items = sorted(self.scan(), key=lambda d: (d["split"], d["img_path"]))
        anomalous = [d for d in items if d["gt_label"] == 1]
        with_mask = [d for d in anomalous if d["mask_path"]]
        has_masks = bool(anomalous) and len(with_mask) == len(anomalous)
        category = self.category_name(self.data_root)
        if with_mask and not has_masks:
            missing = next(d["img_path"] for d in anomalous if not d["mask_path"])
            warn_once(
                ("no mask", type(self).__name__, str(self.data_root), category),
                f"{self.DATASET_NAME} category '{category}': "
                f"{len(anomalous) - len(with_mask)} of {len(anomalous)} anomalous images have "
                f"no mask (e.g. {missing}); pixel metrics are disabled for this category",
            )
        if has_masks:
            self._warn_mask_sizes(with_mask, category)
        for d in items:
            d["has_masks"] = has_masks
            if not has_masks:
                d["mask_path"] = None
        return items

    def _warn_mask_sizes(self, items: list[dict], category: str) -> None:
        """One warning with the count of masks whose size differs from their image's.

        ``LoadAnomalyMask`` resizes such a mask (nearest neighbour) to its image; a size
        mismatch usually means a mask of another image or a resized copy, so say so once.
        Only the file headers are read.
        """
        differ = []
        for d in items:
            mask, image = _image_size(d["mask_path"]), _image_size(d["img_path"])
            if mask is not None and image is not None and mask != image:
                differ.append((d["mask_path"], mask, image))
        if differ:
            path, (mw, mh), (iw, ih) = differ[0]
            warn_once(
                ("mask size", type(self).__name__, str(self.data_root), category),
                f"{self.DATASET_NAME} category '{category}': {len(differ)} of {len(items)} "
                f"masks differ in size from their image (e.g. {path}: {mw}x{mh}, image "
                f"{iw}x{ih}); they are resized to the image with nearest neighbour",
            )

    def load_data_list(self) -> list[dict]:
        """Scan the data on disk and keep the items of ``self.split``."""
        items = self.all_items()
        self._metainfo["has_masks"] = items[0]["has_masks"] if items else False
        data_list = [
            {k: v for k, v in d.items() if k != "split"} for d in items if d["split"] == self.split
        ]
        if not data_list:
            raise DataError(
                f"{self.DATASET_NAME} category '{self.category_name(self.data_root)}' has no "
                f"{self.split} images at {self.expected_split_location()} (expected "
                f"{self.LAYOUT}; image extensions {', '.join(IMG_EXTENSIONS)})"
            )
        return data_list if self.holdout is None else self._hold_out(data_list)

    def _hold_out(self, data_list: list[dict]) -> list[dict]:
        """The part of ``data_list`` that ``holdout`` keeps (see the class)."""
        normal = [i for i, d in enumerate(data_list) if d["gt_label"] == 0]
        if len(normal) < 2:
            raise DataError(
                f"{self.DATASET_NAME} category '{self.category_name(self.data_root)}' has "
                f"{len(normal)} normal training image(s); holdout needs two or more (add "
                "images or remove holdout)"
            )
        fraction, seed = self.holdout["fraction"], self.holdout["seed"]
        held = {normal[i] for i in held_out_indices(len(normal), fraction, seed)}
        keep_held = self.holdout["keep"] == "held"
        return [d for i, d in enumerate(data_list) if (i in held) == keep_held]

    def item(
        self,
        img_path: Path | str,
        split: str,
        gt_label: int,
        defect_type: str,
        mask_path: Path | str | None = None,
    ) -> dict[str, Any]:
        """One ``data_info`` dict (with its ``split``) in the shape every dataset yields."""
        return dict(
            img_path=str(img_path),
            mask_path=str(mask_path) if mask_path else None,
            gt_label=int(gt_label),
            defect_type=defect_type,
            category=self.category_name(self.data_root),
            split=split,
        )
