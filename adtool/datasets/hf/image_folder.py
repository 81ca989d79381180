"""ImageFolder classification data: ``<root>/{train,val}/<class>/*``.

Class names are the sub-folder names of ``<root>/train`` (sorted), so the labels of every
split agree; a class folder missing from ``val`` simply has no images there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mmengine.dataset import BaseDataset

from adtool.datasets.base import list_images, list_subdirs
from adtool.errors import ConfigError, DataError
from adtool.registry import DATASETS

HF_SPLITS = ("train", "val")


def class_folders(data_root: str | Path) -> list[str]:
    """Sorted class names: the sub-folders of ``<root>/train`` (else of ``<root>/val``)."""
    root = Path(data_root)
    for split in HF_SPLITS:
        names = [p.name for p in list_subdirs(root / split)]
        if names:
            return names
    return []


@DATASETS.register_module()
class ImageFolderCls(BaseDataset):
    """Images sorted into one folder per class.

    Each data_info: ``img_path``, ``gt_label`` (index into ``metainfo['classes']``),
    ``class_name``.

    Args:
        data_root: Folder holding ``train/`` and ``val/``. Defaults to
            ``'data/imagefolder'``.
        split: ``'train'`` or ``'val'``. Defaults to ``'train'``.
        pipeline: Transforms applied to each item. Defaults to ``()``.
        classes: Class names in label order; None reads the folder names of
            ``<root>/train``. Defaults to None.
        indices: Keep only these items (an int keeps the first ``indices``), as in
            mmengine. Defaults to None.
        test_mode: mmengine's flag (no refetch on a failed item). Defaults to False.
    """

    METAINFO: dict = {"dataset": "imagefolder"}

    def __init__(
        self,
        data_root: str = "data/imagefolder",
        split: str = "train",
        pipeline: Sequence = (),
        classes: Sequence[str] | None = None,
        indices: int | Sequence[int] | None = None,
        test_mode: bool = False,
    ) -> None:
        if split not in HF_SPLITS:
            raise ConfigError(f"ImageFolderCls split must be one of {HF_SPLITS}, got {split!r}")
        self.split = split
        names = list(classes) if classes is not None else class_folders(data_root)
        if not names:
            raise DataError(
                f"no class folders in {Path(data_root) / 'train'}; expected "
                "<root>/{train,val}/<class>/* (pass --data-root, or write generated data with "
                "adtool.datasets.hf.make_classification_dataset(root))"
            )
        super().__init__(
            data_root=str(data_root),
            pipeline=list(pipeline),
            metainfo={"classes": tuple(names)},
            indices=indices,
            test_mode=test_mode,
            serialize_data=False,
        )

    @classmethod
    def model_settings(cls, dataset_cfg: dict, metainfo: dict | None = None) -> dict:
        """Model settings the data decides: ``num_classes``, from ``metainfo``'s classes
        (a checkpoint's), the config's ``classes``, else the class folders; ``{}`` when
        none is found.

        Args:
            dataset_cfg: This dataset's config dict (``data_root``, ``classes``).
            metainfo: A trained model's ``dataset_meta``. Defaults to None.
        """
        classes = (metainfo or {}).get("classes") or dataset_cfg.get("classes")
        if not classes:
            classes = class_folders(dataset_cfg.get("data_root", "data/imagefolder"))
        return {"num_classes": len(classes)} if classes else {}

    def load_data_list(self) -> list[dict]:
        folder = Path(self.data_root) / self.split
        data_list = []
        for label, name in enumerate(self.metainfo["classes"]):
            for path in list_images(folder / name):
                data_list.append({"img_path": str(path), "gt_label": label, "class_name": name})
        if not data_list:
            raise DataError(
                f"no images in {folder}/<class>/ for classes {list(self.metainfo['classes'])}; "
                "expected <root>/{train,val}/<class>/*"
            )
        return data_list
