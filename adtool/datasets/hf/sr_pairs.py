"""Super-resolution pairs: ``<root>/{train,val}/HR/*`` with ``LR_x<scale>/`` partners.

An LR image is matched to its HR image by file name, or by ``<stem>x<scale>.<ext>``
(DIV2K's ``0001x2.png``). Without an ``LR_x<scale>`` folder, LR images are made on the fly
by bicubic downscaling (:class:`~adtool.datasets.hf.transforms.LoadSRPair`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mmengine.dataset import BaseDataset

from adtool.datasets.base import list_images
from adtool.errors import ConfigError, DataError
from adtool.registry import DATASETS

HF_SPLITS = ("train", "val")


@DATASETS.register_module()
class SRPairs(BaseDataset):
    """High-/low-resolution image pairs for super-resolution.

    Each data_info: ``img_path`` (HR), ``lr_path`` (LR file or None: made by bicubic
    downscaling), ``scale``.

    Args:
        data_root: Folder holding ``train/`` and ``val/``. Defaults to ``'data/sr'``.
        split: ``'train'`` or ``'val'``. Defaults to ``'train'``.
        pipeline: Transforms applied to each item. Defaults to ``()``.
        scale: Upscaling factor. Defaults to 2.
        hr_dir: HR folder name inside the split. Defaults to ``'HR'``.
        lr_dir: LR folder name; None means ``'LR_x<scale>'``. Defaults to None.
        indices: Keep only these items (an int keeps the first ``indices``). Defaults to
            None.
        test_mode: mmengine's flag. Defaults to False.
    """

    METAINFO: dict = {"dataset": "sr_pairs"}

    def __init__(
        self,
        data_root: str = "data/sr",
        split: str = "train",
        pipeline: Sequence = (),
        scale: int = 2,
        hr_dir: str = "HR",
        lr_dir: str | None = None,
        indices: int | Sequence[int] | None = None,
        test_mode: bool = False,
    ) -> None:
        if split not in HF_SPLITS:
            raise ConfigError(f"SRPairs split must be one of {HF_SPLITS}, got {split!r}")
        if int(scale) < 1:
            raise ConfigError(f"SRPairs scale must be >= 1, got {scale}")
        self.split = split
        self.scale = int(scale)
        self.hr_dir = hr_dir
        self.lr_dir = lr_dir if lr_dir is not None else f"LR_x{self.scale}"
        super().__init__(
            data_root=str(data_root),
            pipeline=list(pipeline),
            metainfo={"scale": self.scale},
            indices=indices,
            test_mode=test_mode,
            serialize_data=False,
        )

    def load_data_list(self) -> list[dict]:
        split_dir = Path(self.data_root) / self.split
        hr_images = list_images(split_dir / self.hr_dir)
        if not hr_images:
            raise DataError(
                f"no HR images in {split_dir / self.hr_dir}; expected <root>/{{train,val}}/HR/* "
                f"(+ optional LR_x{self.scale}/), or write generated data with "
                "adtool.datasets.hf.make_sr_dataset(root)"
            )
        lr_folder = split_dir / self.lr_dir
        lr_by_name = {p.name: p for p in list_images(lr_folder)}
        lr_by_stem = {p.stem: p for p in lr_by_name.values()}
        data_list = []
        missing = []
        for hr in hr_images:
            lr = None
            if lr_by_name:
                lr = (
                    lr_by_name.get(hr.name)
                    or lr_by_stem.get(hr.stem)
                    or lr_by_stem.get(f"{hr.stem}x{self.scale}")
                )
                if lr is None:
                    missing.append(hr.name)
            data_list.append(
                {
                    "img_path": str(hr),
                    "lr_path": None if lr is None else str(lr),
                    "scale": self.scale,
                }
            )
        if missing:
            raise DataError(
                f"{len(missing)} HR images have no LR partner in {lr_folder} (e.g. {missing[0]}); "
                "name them like the HR file or <stem>x<scale>, or remove the LR folder to make "
                "LR images by bicubic downscaling"
            )
        return data_list
