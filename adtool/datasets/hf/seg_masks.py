"""Semantic segmentation data: images in ``<root>/{train,val}/`` and PNG label masks in
``<root>/masks/{train,val}/`` with the same file names (or the same stem + ``.png``).

A mask holds one class index per pixel (0..K-1) and 255 for pixels to ignore. Class
names come from the config (``classes=(...)``) or ``<root>/classes.txt`` (one name per
line, line i = class i); with neither, the class ids found in the training masks name the
classes ``class_0 .. class_<max id>`` (one warning line), so a first run works. Each
``data_info``: ``img_path``, ``seg_map_path``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from mmengine.dataset import BaseDataset
from PIL import Image

from adtool.datasets.base import list_images, warn_once
from adtool.datasets.hf.coco import check_split
from adtool.errors import DataError
from adtool.registry import DATASETS, TRANSFORMS

#: Mask value of pixels that no metric or loss counts.
IGNORE_INDEX = 255

SEG_HINT = (
    "expected <root>/{train,val}/ images and <root>/masks/{train,val}/ PNG masks with the "
    "same names; pass --data-root, or write generated data with "
    "adtool.datasets.hf.synthetic_det_seg.make_segmentation_dataset(root)"
)


def read_classes(data_root: Path) -> tuple[str, ...] | None:
    """Class names from ``<data_root>/classes.txt`` (blank lines skipped); None without it."""
    path = data_root / "classes.txt"
    if not path.is_file():
        return None
    names = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    names = tuple(n for n in names if n)
    if not names:
        raise DataError(f"{path} lists no class names")
    return names


def mask_class_ids(mask_dir: Path) -> list[int]:
    """Sorted class ids (the ignore index left out) found in the PNG masks of ``mask_dir``."""
    found: set[int] = set()
    for path in list_images(mask_dir):
        with Image.open(path) as mask:
            if mask.mode not in ("L", "P", "I", "I;16"):
                raise DataError(
                    f"mask {path} has mode {mask.mode}; a mask holds one class index per pixel "
                    "(a single-channel or palette PNG)"
                )
            found.update(int(v) for v in np.unique(np.asarray(mask)))
    found.discard(IGNORE_INDEX)
    return sorted(found)


def seg_classes(
    data_root: str | Path, classes: Sequence[str] | None = None, mask_dir: str | None = None
) -> tuple[str, ...]:
    """Class names of a SegMasks folder: ``classes``, else ``classes.txt``, else named from
    the ids in the training masks (``class_<id>`` for ids 0..max, one warning line).

    Args:
        data_root: The dataset folder.
        classes: Names given in the config. Defaults to None.
        mask_dir: Mask folder of the training split, relative to ``data_root``. Defaults
            to ``masks/train`` (``masks/val`` when there is no training folder).

    Raises:
        DataError: when no names are given and no mask holds a class id.
    """
    if classes is not None:
        return tuple(str(c) for c in classes)
    root = Path(data_root)
    names = read_classes(root)
    if names is not None:
        return names
    folders = [root / mask_dir] if mask_dir else [root / "masks" / s for s in ("train", "val")]
    folder = next((f for f in folders if f.is_dir()), folders[0])
    ids = mask_class_ids(folder)
    if not ids:
        raise DataError(
            f"SegMasks needs class names and found no class ids in the masks of {folder}; set "
            f"classes=(...) in the dataset config or write {root / 'classes.txt'} with one "
            "name per line"
        )
    names = tuple(f"class_{i}" for i in range(ids[-1] + 1))
    warn_once(
        ("seg_classes", str(root)),
        f"SegMasks: no classes=(...) and no {root / 'classes.txt'}; the masks in {folder} hold "
        f"ids {ids}, named {names[0]}..{names[-1]} ({len(names)} classes); write classes.txt "
        "(one name per line) to name them",
    )
    return names


@DATASETS.register_module()
class SegMasks(BaseDataset):
    """Images with per-pixel class masks for semantic segmentation.

    Args:
        data_root: Folder holding ``{train,val}/`` and ``masks/{train,val}/``.
        split: ``'train'`` or ``'val'``. Defaults to ``'train'``.
        pipeline: Transforms (config dicts or callables). Defaults to ``()``.
        classes: Class names, index = label. Defaults to None (read
            ``<data_root>/classes.txt``, else name the ids found in the training masks).
        img_dir: Image folder, relative to ``data_root``. Defaults to ``<split>``.
        mask_dir: Mask folder, relative to ``data_root``. Defaults to ``masks/<split>``.
        test_mode: mmengine's flag. Defaults to False.
        indices: Keep only these items (or the first ``n``). Defaults to None.
        serialize_data: mmengine's flag. Defaults to True.
        lazy_init: Defer scanning the folders until first use. Defaults to False.
        max_refetch: Retries when the pipeline returns None. Defaults to 1000.
    """

    METAINFO: dict = dict(dataset="seg_masks")

    def __init__(
        self,
        data_root: str | Path,
        split: str = "train",
        pipeline: Sequence[dict | Callable] = (),
        classes: Sequence[str] | None = None,
        img_dir: str | None = None,
        mask_dir: str | None = None,
        test_mode: bool = False,
        indices: int | Sequence[int] | None = None,
        serialize_data: bool = True,
        lazy_init: bool = False,
        max_refetch: int = 1000,
    ) -> None:
        check_split(split, type(self).__name__)
        root = Path(data_root)
        self.split = split
        self.img_dir = root / (img_dir or split)
        self.mask_dir = root / (mask_dir or f"masks/{split}")
        classes = seg_classes(root, classes)
        built = [TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline]
        super().__init__(
            data_root=str(root),
            metainfo=dict(classes=classes),
            pipeline=built,
            test_mode=test_mode,
            indices=indices,
            serialize_data=serialize_data,
            lazy_init=lazy_init,
            max_refetch=max_refetch,
        )

    @classmethod
    def model_settings(cls, dataset_cfg: dict, metainfo: dict | None = None) -> dict:
        """``num_classes`` from ``metainfo``'s classes (a checkpoint's), else the config's
        ``classes``, ``classes.txt`` or the training masks (:func:`seg_classes`).

        Args:
            dataset_cfg: This dataset's config dict (``data_root``, ``classes``).
            metainfo: A trained model's ``dataset_meta``. Defaults to None.
        """
        classes = (metainfo or {}).get("classes")
        if not classes:
            classes = seg_classes(dataset_cfg.get("data_root", "."), dataset_cfg.get("classes"))
        return {"num_classes": len(classes)}

    @classmethod
    def _load_metainfo(cls, metainfo: dict | None = None) -> dict:
        # mmengine's version tries to open every string value as a meta file.
        return {**copy.deepcopy(cls.METAINFO), **(dict(metainfo) if metainfo else {})}

    def load_data_list(self) -> list[dict]:
        images = list_images(self.img_dir)
        if not images:
            raise DataError(f"no images in {self.img_dir}; {SEG_HINT}")
        data_list, missing = [], []
        for image in images:
            mask = self.mask_dir / image.name
            if not mask.is_file():
                mask = self.mask_dir / f"{image.stem}.png"
            if not mask.is_file():
                missing.append(image.name)
                continue
            data_list.append({"img_path": str(image), "seg_map_path": str(mask)})
        if missing:
            raise DataError(
                f"{len(missing)} image(s) in {self.img_dir} have no mask in {self.mask_dir}, e.g. "
                f"{missing[0]}; masks must have the image's file name (or its stem + .png)"
            )
        return data_list
