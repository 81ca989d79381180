"""COCO-format object detection data: ``<root>/{train,val}/`` images and
``<root>/annotations/{train,val}.json``.

Each ``data_info``: ``img_path``, ``img_id``, ``ori_shape`` ((height, width) from the
JSON), ``gt_bboxes`` (float32 (N, 4) xyxy pixels, clipped to the image) and ``gt_labels``
(int64 (N,): category ids mapped to 0..K-1 in id order). Crowd annotations
(``iscrowd=1``) and boxes without area are left out.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from mmengine.dataset import BaseDataset

from adtool.errors import ConfigError, DataError
from adtool.registry import DATASETS, TRANSFORMS

HF_SPLITS = ("train", "val")
COCO_HINT = (
    "expected <root>/{train,val}/ images and <root>/annotations/{train,val}.json; pass "
    "--data-root, or write generated data with "
    "adtool.datasets.hf.synthetic_det_seg.make_coco_detection_dataset(root)"
)


def read_coco(ann_file: Path) -> dict:
    """The parsed COCO JSON, checked for the three lists detection needs."""
    if not ann_file.is_file():
        raise DataError(f"COCO annotation file {ann_file} not found; {COCO_HINT}")
    try:
        coco = json.loads(ann_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"COCO annotation file {ann_file} is not valid JSON: {e}") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise DataError(f"COCO annotation file {ann_file} has no '{key}' list")
    if not coco["categories"]:
        raise DataError(f"COCO annotation file {ann_file} lists no categories")
    return coco


def coco_to_data_list(coco: dict, img_dir: Path) -> tuple[list[dict], list[str], list[int]]:
    """COCO dict -> (data_infos, class names, category ids), labels in category-id order."""
    cats = sorted(coco["categories"], key=lambda c: c["id"])
    cat_ids = [int(c["id"]) for c in cats]
    label_of = {cid: i for i, cid in enumerate(cat_ids)}
    per_image: dict[int, list[dict]] = {}
    for ann in coco["annotations"]:
        per_image.setdefault(int(ann["image_id"]), []).append(ann)
    data_list = []
    for image in sorted(coco["images"], key=lambda im: im["id"]):
        height, width = int(image["height"]), int(image["width"])
        boxes, labels = [], []
        for ann in per_image.get(int(image["id"]), []):
            if ann.get("iscrowd", 0):
                continue
            if int(ann["category_id"]) not in label_of:
                raise DataError(
                    f"annotation {ann.get('id')} has category_id {ann['category_id']} that is not "
                    "in 'categories'; fix the JSON"
                )
            x, y, w, h = (float(v) for v in ann["bbox"])
            x1, y1 = min(max(x, 0.0), width), min(max(y, 0.0), height)
            x2, y2 = min(max(x + w, 0.0), width), min(max(y + h, 0.0), height)
            if x2 <= x1 or y2 <= y1:
                continue
            boxes.append((x1, y1, x2, y2))
            labels.append(label_of[int(ann["category_id"])])
        data_list.append(
            {
                "img_path": str(img_dir / image["file_name"]),
                "img_id": int(image["id"]),
                "ori_shape": (height, width),
                "gt_bboxes": np.asarray(boxes, np.float32).reshape(-1, 4),
                "gt_labels": np.asarray(labels, np.int64),
            }
        )
    return data_list, [str(c["name"]) for c in cats], cat_ids


def check_split(split: str, cls_name: str) -> None:
    if split not in HF_SPLITS:
        raise ConfigError(f"{cls_name} split must be 'train' or 'val', got {split!r}")


@DATASETS.register_module()
class CocoDetection(BaseDataset):
    """Object detection images with COCO JSON annotations.

    Args:
        data_root: Folder holding ``{train,val}/`` and ``annotations/``.
        split: ``'train'`` or ``'val'``. Defaults to ``'train'``.
        pipeline: Transforms (config dicts or callables). Defaults to ``()``.
        ann_file: Annotation JSON, relative to ``data_root``. Defaults to
            ``annotations/<split>.json``.
        img_dir: Image folder, relative to ``data_root``. Defaults to ``<split>``.
        filter_empty: Leave out images without boxes (training only makes sense of
            them as negatives, which DETR-style models handle). Defaults to False.
        test_mode: mmengine's flag. Defaults to False.
        indices: Keep only these items (or the first ``n``). Defaults to None.
        serialize_data: mmengine's flag. Defaults to True.
        lazy_init: Defer reading the JSON until first use. Defaults to False.
        max_refetch: Retries when the pipeline returns None. Defaults to 1000.
    """

    METAINFO: dict = dict(dataset="coco")

    def __init__(
        self,
        data_root: str | Path,
        split: str = "train",
        pipeline: Sequence[dict | Callable] = (),
        ann_file: str | None = None,
        img_dir: str | None = None,
        filter_empty: bool = False,
        test_mode: bool = False,
        indices: int | Sequence[int] | None = None,
        serialize_data: bool = True,
        lazy_init: bool = False,
        max_refetch: int = 1000,
    ) -> None:
        check_split(split, type(self).__name__)
        self.split = split
        self.filter_empty = filter_empty
        root = Path(data_root)
        self.img_dir = root / (img_dir or split)
        ann_path = root / (ann_file or f"annotations/{split}.json")
        # Classes come from the JSON, so it is read before mmengine asks for the metainfo.
        self._coco = read_coco(ann_path)
        self.ann_path = ann_path
        cats = sorted(self._coco["categories"], key=lambda c: c["id"])
        metainfo = dict(
            classes=tuple(str(c["name"]) for c in cats), cat_ids=tuple(int(c["id"]) for c in cats)
        )
        built = [TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline]
        super().__init__(
            data_root=str(root),
            metainfo=metainfo,
            pipeline=built,
            test_mode=test_mode,
            indices=indices,
            serialize_data=serialize_data,
            lazy_init=lazy_init,
            max_refetch=max_refetch,
        )

    @classmethod
    def model_settings(cls, dataset_cfg: dict, metainfo: dict | None = None) -> dict:
        """``num_classes``: the categories of ``metainfo`` (a checkpoint's), else of the
        split's annotation JSON.

        Args:
            dataset_cfg: This dataset's config dict (``data_root``, ``split``, ``ann_file``).
            metainfo: A trained model's ``dataset_meta``. Defaults to None.
        """
        classes = (metainfo or {}).get("classes")
        if classes:
            return {"num_classes": len(classes)}
        root = Path(dataset_cfg.get("data_root", "."))
        split = dataset_cfg.get("split", "train")
        coco = read_coco(root / (dataset_cfg.get("ann_file") or f"annotations/{split}.json"))
        return {"num_classes": len(coco["categories"])}

    @classmethod
    def _load_metainfo(cls, metainfo: dict | None = None) -> dict:
        # mmengine's version tries to open every string value as a meta file.
        return {**copy.deepcopy(cls.METAINFO), **(dict(metainfo) if metainfo else {})}

    def load_data_list(self) -> list[dict]:
        data_list, _, _ = coco_to_data_list(self._coco, self.img_dir)
        if self.filter_empty:
            data_list = [d for d in data_list if len(d["gt_labels"])]
        if not data_list:
            raise DataError(f"{self.ann_path} lists no images; {COCO_HINT}")
        missing = [d["img_path"] for d in data_list if not Path(d["img_path"]).is_file()]
        if missing:
            raise DataError(
                f"{len(missing)} image(s) listed in {self.ann_path} are missing, e.g. "
                f"{missing[0]}; put the images in {self.img_dir}"
            )
        return data_list
