"""Inference for the HuggingFace task configs (``task`` != ``'anomaly'``).

Layer 4 of ``adtool.apis`` (beside :mod:`~adtool.apis.inference`, which sends these
configs here). Training and testing them goes through the one run path,
:func:`adtool.apis.core.run_category`: the test metric (ClassificationMetric,
DetectionMetric, SegmentationMetric, SuperResolutionMetric) keeps
``last_report = {"metrics", "thresholds", "n_test"}`` (optionally
``"inference_thresholds"``) and writes its own files with
``write_outputs(work_dir, results)``; detection's best-F1 score threshold is stored in
the trained checkpoint's ``meta['adtool_thresholds']`` (:mod:`adtool.apis.thresholds`).

:func:`infer_task` (``tools/infer.py`` for these configs) reads images through
``cfg.infer_pipeline`` if the config sets one, else the test pipeline (super-resolution:
load + pack, since the input is the low-resolution image); so the test pipelines'
annotation steps must skip images without annotations.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config

from adtool.apis.checkpoints import load_model
from adtool.apis.config_index import task_of
from adtool.apis.core import jsonable
from adtool.apis.inputs import list_inputs, unique_stems
from adtool.apis.thresholds import META_KEY as THRESHOLDS_META_KEY
from adtool.errors import ConfigError, DataError
from adtool.fileio import atomic_write_bytes, atomic_write_text
from adtool.registry import TRANSFORMS


def _test_dataset_cfg(cfg: Config) -> dict:
    loader = cfg.get("test_dataloader") or cfg.get("train_dataloader")
    if not loader or not loader.get("dataset"):
        raise ConfigError("config has no test_dataloader.dataset; a task config needs one")
    return loader["dataset"]


def _infer_pipeline(cfg: Config, task: str):
    steps = cfg.get("infer_pipeline")
    if steps is None:
        if task == "super_resolution":
            steps = [dict(type="LoadAnomalyImage"), dict(type="PackSRInputs")]
        else:
            steps = _test_dataset_cfg(cfg).get("pipeline") or []
    transforms = [TRANSFORMS.build(copy.deepcopy(step)) for step in steps]

    def apply(path: Path) -> dict:
        results = {"img_path": str(path)}
        for transform in transforms:
            results = transform(results)
        return results

    return apply


def _class_names(meta: dict, cfg: Config) -> list[str] | None:
    classes = (meta.get("dataset_meta") or {}).get("classes")
    if classes is None:
        classes = cfg.get("class_names")
    return list(classes) if classes is not None else None


def _name(classes: list[str] | None, label: int) -> str:
    if classes is not None and 0 <= label < len(classes):
        return str(classes[label])
    return str(label)


def _palette(n: int) -> np.ndarray:
    """``n`` distinct RGB colours (uint8), deterministic."""
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    return np.array([[int(255 * c) for c in cmap(i % 20)[:3]] for i in range(max(n, 1))], np.uint8)


def _save_png(image, path: Path) -> None:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def _original_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    from adtool.datasets.transforms import image_to_rgb

    with Image.open(path) as image:
        return image_to_rgb(image)


def _scale_to_original(sample, shape: tuple[int, int]) -> tuple[float, float]:
    img_shape = sample.metainfo.get("img_shape") or shape
    return shape[0] / float(img_shape[0]), shape[1] / float(img_shape[1])


def _draw_classification(path, sample, classes, out: Path) -> dict:
    from PIL import Image, ImageDraw

    label = int(sample.pred_label)
    scores = torch.as_tensor(sample.pred_scores).float()
    confidence = float(scores[label])
    image = Image.fromarray(_original_rgb(path))
    draw = ImageDraw.Draw(image)
    text = f"{_name(classes, label)} {confidence:.2f}"
    draw.rectangle((0, 0, 8 + 7 * len(text), 16), fill=(0, 0, 0))
    draw.text((4, 2), text, fill=(255, 255, 255))
    _save_png(image, out)
    top = torch.argsort(scores, descending=True)[:5].tolist()
    return {
        "label": label,
        "class_name": _name(classes, label),
        "confidence": confidence,
        "top5": [
            {"label": i, "class_name": _name(classes, i), "score": float(scores[i])} for i in top
        ],
    }


def _draw_detection(path, sample, classes, threshold: float, out: Path) -> dict:
    from PIL import Image, ImageDraw

    rgb = _original_rgb(path)
    sy, sx = _scale_to_original(sample, rgb.shape[:2])
    inst = sample.pred_instances
    boxes = torch.as_tensor(inst.bboxes).float().reshape(-1, 4)
    scores = torch.as_tensor(inst.scores).float().reshape(-1)
    labels = torch.as_tensor(inst.labels).long().reshape(-1)
    keep = scores >= threshold
    boxes = boxes[keep] * torch.tensor([sx, sy, sx, sy])
    scores, labels = scores[keep], labels[keep]
    image = Image.fromarray(rgb)
    draw = ImageDraw.Draw(image)
    colours = _palette(int(labels.max()) + 1 if len(labels) else 1)
    found = []
    for box, score, label in zip(boxes.tolist(), scores.tolist(), labels.tolist()):
        colour = tuple(int(c) for c in colours[label])
        draw.rectangle(box, outline=colour, width=2)
        draw.text((box[0] + 2, box[1] + 1), f"{_name(classes, label)} {score:.2f}", fill=colour)
        found.append(
            {
                "label": label,
                "class_name": _name(classes, label),
                "score": score,
                "bbox_xyxy": [round(v, 2) for v in box],
            }
        )
    _save_png(image, out)
    return {"threshold": threshold, "boxes": found}


def _draw_segmentation(path, sample, classes, out: Path, mask_out: Path) -> dict:
    from PIL import Image

    rgb = _original_rgb(path)
    seg = torch.as_tensor(sample.pred_sem_seg).long().squeeze()
    mask = Image.fromarray(seg.numpy().astype(np.uint8)).resize(
        (rgb.shape[1], rgb.shape[0]), Image.NEAREST
    )
    labels = np.asarray(mask)
    n = int(labels.max()) + 1
    colours = _palette(n)
    blended = (0.5 * rgb + 0.5 * colours[labels]).astype(np.uint8)
    _save_png(Image.fromarray(blended), out)
    _save_png(mask, mask_out)
    counts = np.bincount(labels.ravel(), minlength=n) / labels.size
    return {
        "mask": str(mask_out),
        "class_fractions": {
            _name(classes, i): round(float(c), 4) for i, c in enumerate(counts) if c > 0
        },
    }


def _save_super_resolution(sample, out: Path) -> dict:
    from PIL import Image

    img = torch.as_tensor(sample.pred_img).float().clamp(0, 1)
    arr = (img.permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    _save_png(Image.fromarray(arr), out)
    return {"output": str(out), "output_shape": list(arr.shape[:2])}


def infer_task(
    cfg: Config,
    checkpoint: str | os.PathLike,
    inputs: str | os.PathLike | Iterable,
    out_dir: str | os.PathLike,
    threshold: float | None = None,
    device: str = "cpu",
    strict: bool = False,
) -> dict:
    """Predict on an image or a folder; write predictions (CSV + JSON) and pictures.

    Writes into ``out_dir``: ``predictions.json`` (one entry per image),
    ``predictions.csv`` (one row per image; detection: one row per kept box) and
    ``pictures/<stem>.png``: classification the image with its label and confidence,
    detection the boxes with score >= the threshold, segmentation the mask overlaid (the
    label mask itself in ``masks/<stem>.png``), super-resolution the upscaled image.

    Args:
        cfg: The task config the checkpoint was trained with.
        checkpoint: A checkpoint written by training (:func:`adtool.apis.core.run`).
        inputs: An image file, a folder of images, or a list of either.
        out_dir: Output folder.
        threshold: Detection score threshold. Defaults to the best-F1 threshold stored in
            the checkpoint's meta, else 0.5.
        device: Torch device. Defaults to ``'cpu'``.
        strict: Stop at the first unreadable image; otherwise it is skipped, listed in
            ``failed`` and in ``predictions.csv`` with its ``status``. Defaults to False.

    Returns:
        ``{"task", "checkpoint", "threshold", "n_images", "predictions": [...],
        "failed": [{"image", "status"}]}``.
    """
    from mmengine.dataset import pseudo_collate

    task = task_of(cfg)
    out_dir = Path(out_dir)
    paths = list_inputs(inputs, exclude=out_dir)
    model, loaded = load_model(cfg, checkpoint, device)
    meta = loaded.get("meta") or {}
    classes = _class_names(meta, cfg)
    if task == "detection" and threshold is None:
        threshold = (meta.get(THRESHOLDS_META_KEY) or {}).get("score", 0.5)
    pipeline = _infer_pipeline(cfg, task)
    predictions = []
    rows: list[dict] = []
    failed: list[dict] = []
    for path, stem in zip(paths, unique_stems(paths)):
        try:
            batch = pseudo_collate([pipeline(path)])
        except DataError as e:
            if strict:
                raise
            failed.append({"image": str(path), "status": f"error: {e}"})
            rows.append(failed[-1])
            continue
        with torch.no_grad():
            sample = model.test_step(batch)[0]
        picture = out_dir / "pictures" / f"{stem}.png"
        entry = {"image": str(path)}
        if task == "classification":
            entry.update(_draw_classification(path, sample, classes, picture))
            rows.append({k: entry[k] for k in ("image", "label", "class_name", "confidence")})
        elif task == "detection":
            entry.update(_draw_detection(path, sample, classes, float(threshold), picture))
            for box in entry["boxes"]:
                x1, y1, x2, y2 = box["bbox_xyxy"]
                rows.append(
                    {
                        "image": str(path),
                        "label": box["label"],
                        "class_name": box["class_name"],
                        "score": round(box["score"], 4),
                        "x1": x1,
                        "y1": y1,
                        "x2": x2,
                        "y2": y2,
                    }
                )
        elif task == "segmentation":
            mask_path = out_dir / "masks" / f"{stem}.png"
            entry.update(_draw_segmentation(path, sample, classes, picture, mask_path))
            rows.append({"image": str(path), "mask": entry["mask"]})
        else:
            entry.update(_save_super_resolution(sample, picture))
            rows.append({"image": str(path), "output": entry["output"]})
        entry["picture"] = str(picture)
        predictions.append(entry)
    for row in rows:
        row.setdefault("status", "ok")
    summary = {
        "task": task,
        "checkpoint": str(checkpoint),
        "threshold": threshold,
        "n_images": len(paths),
        "predictions": predictions,
        "failed": failed,
    }
    summary = jsonable(summary)
    atomic_write_text(out_dir / "predictions.json", json.dumps(summary, indent=2) + "\n")
    _write_csv(out_dir / "predictions.csv", rows)
    return summary


def _write_csv(path: Path, rows: list[dict]) -> None:
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    if "status" in fields:  # last, whichever row came first
        fields = [k for k in fields if k != "status"] + ["status"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields or ["image"])
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())
