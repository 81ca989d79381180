"""Semantic segmentation data: images in ``<root>/{train,val}/`` and PNG label masks in
``<root>/masks/{train,val}/`` with the same file names (or the same stem + ``.png``).

A mask holds one class index per pixel (0..K-1) and 255 for pixels to ignore. Class
names come from the config (``classes=(...)``) or ``<root>/classes.txt`` (one name per
line, line i = class i). Each ``data_info``: ``img_path``, ``seg_map_path``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path

from mmengine.dataset import BaseDataset

from adtool.datasets.base import list_images
from adtool.datasets.hf.coco import check_split
from adtool.errors import ConfigError, DataError
from adtool.registry import DATASETS, TRANSFORMS

SEG_HINT = (
    "expected <root>/{train,val}/ images and <root>/masks/{train,val}/ PNG masks with the "
    "same names; pass --data-root, or write generated data with "
    "adtool.datasets.hf.synthetic_det_seg.make_segmentation_dataset(root)"
)


def read_classes(data_root: Path) -> tuple[str, ...]:
    """Class names from ``<data_root>/classes.txt`` (blank lines skipped)."""
    path = data_root / "classes.txt"
    if not path.is_file():
        raise ConfigError(
            f"SegMasks needs class names: set classes=(...) in the dataset config or write "
            f"{path} with one name per line"
        )
    names = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    names = tuple(n for n in names if n)
    if not names:
        raise DataError(f"{path} lists no class names")
    return names


@DATASETS.register_module()
class SegMasks(BaseDataset):
    """Images with per-pixel class masks for semantic segmentation.

    Args:
        data_root: Folder holding ``{train,val}/`` and ``masks/{train,val}/``.
        split: ``'train'`` or ``'val'``. Defaults to ``'train'``.
        pipeline: Transforms (config dicts or callables). Defaults to ``()``.
        classes: Class names, index = label. Defaults to None (read
            ``<data_root>/classes.txt``).
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
        classes = tuple(str(c) for c in classes) if classes is not None else read_classes(root)
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
