"""Train, test and run inference for the HuggingFace task configs (``task != 'anomaly'``).

:func:`run_task` is what ``tools/train.py`` / ``tools/test.py`` (through
:func:`adtool.apis.core.run`) call for a config whose top-level ``task`` is
``'classification'``, ``'detection'``, ``'segmentation'`` or ``'super_resolution'``.
The contract with the metrics and wrappers (see ``adtool/models/hf/base.py`` too):

- The test evaluator's first metric is an mmengine ``BaseMetric`` whose
  ``compute_metrics`` returns the flat task metrics (classification ``accuracy``,
  ``top5_accuracy``; detection ``mAP``, ``mAP50``, ``mAP75``; segmentation ``mIoU``,
  ``pixel_accuracy``; super-resolution ``PSNR``, ``SSIM``), keeps
  ``last_report = {"metrics": {...}, "thresholds": {...}}`` (optionally ``"n_test"`` and
  ``"inference_thresholds": {"score": float}``) and implements
  ``write_outputs(work_dir, results)`` (results.txt, plots, pictures).
- :func:`run_task` writes into ``work_dir`` (no category level): ``config.py``, the
  checkpoints (mmengine CheckpointHook), ``results.json`` (atomic) =
  ``{"task", "model", "config", "dataset", "data_root", "metrics", "thresholds",
  "timing": {"train_s", "test_s", "test_images_per_s"}, "n_train", "n_test",
  "train": {"epochs", "iters", "checkpoint"}}`` (``"checkpoint"`` at top level when a
  saved model was tested), then calls ``metric.write_outputs``.
- Thresholds for inference go into the tested checkpoint's meta as
  ``meta["adtool_thresholds"]`` (e.g. ``{"score": 0.42}``, the detection best-F1 score
  threshold): taken from ``last_report["inference_thresholds"]`` or else from
  ``last_report["thresholds"]["best_f1"]`` (its ``"score"``, ``"threshold"`` or
  ``"value"``). Only a checkpoint trained in the same run is updated; a checkpoint given
  for testing is left untouched (its run's thresholds are already in it).
- :func:`infer_task` (``tools/infer.py`` for these tasks) reads images through
  ``cfg.infer_pipeline`` if the config sets one, else the test pipeline (super-resolution:
  load + pack, since the input is the low-resolution image); so the test pipelines'
  annotation steps must skip images without annotations.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config

from adtool.apis.config_index import dataset_name
from adtool.apis.core import runner_from_cfg
from adtool.apis.inference import META_KEY as THRESHOLDS_META_KEY
from adtool.apis.inference import last_checkpoint, write_checkpoint_meta
from adtool.errors import ConfigError, DataError
from adtool.fileio import atomic_write_bytes, atomic_write_text
from adtool.registry import register_all_modules

TASKS = ("classification", "detection", "segmentation", "super_resolution")


def task_of(cfg: Config) -> str:
    """The config's ``task``, checked against the known tasks."""
    task = cfg.get("task", "anomaly")
    if task not in TASKS:
        raise ConfigError(
            f"task '{task}' is not known; set task to one of {', '.join(TASKS)} or 'anomaly'"
        )
    return task


def _config_stem(cfg: Config) -> str | None:
    return Path(cfg.filename).stem if cfg.filename else None


def _test_dataset_cfg(cfg: Config) -> dict:
    loader = cfg.get("test_dataloader") or cfg.get("train_dataloader")
    if not loader or not loader.get("dataset"):
        raise ConfigError("config has no test_dataloader.dataset; a task config needs one")
    return loader["dataset"]


def build_task_runner(
    cfg: Config,
    work_dir: str | os.PathLike,
    checkpoint: str | os.PathLike | None = None,
    resume: bool | str = False,
):
    """An mmengine runner for a task config, writing into ``work_dir``.

    With ``checkpoint``, the wrapper reads only ``config.json`` of its pretrained folder
    (the checkpoint holds the weights) and the runner loads the checkpoint before testing.
    """
    from adtool.models.hf.base import skip_pretrained_weights

    register_all_modules()
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = str(work_dir)
    stem = _config_stem(cfg) or "config"
    cfg.experiment_name = f"{stem}_{time.strftime('%Y%m%d_%H%M%S')}_{os.getpid()}"
    if checkpoint is not None:
        with skip_pretrained_weights():
            return runner_from_cfg(cfg, checkpoint, resume)
    return runner_from_cfg(cfg, checkpoint, resume)


def jsonable(value):
    """``value`` with numpy/torch scalars as Python numbers and NaN/inf as None (valid JSON)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def inference_thresholds(report: dict) -> dict:
    """The thresholds inference needs, from a metric's ``last_report`` (see module doc)."""
    explicit = report.get("inference_thresholds")
    if explicit:
        return {k: float(v) for k, v in explicit.items() if v is not None}
    best = (report.get("thresholds") or {}).get("best_f1")
    if isinstance(best, dict):
        for key in ("score", "threshold", "value"):
            if best.get(key) is not None:
                return {"score": float(best[key])}
    elif isinstance(best, (int, float)):
        return {"score": float(best)}
    return {}


def _dataset_short_name(dataset_type) -> str | None:
    """``METAINFO['dataset']`` of the dataset class (e.g. ``'imagefolder'``), else its name."""
    from adtool.registry import DATASETS

    if not isinstance(dataset_type, str):
        return getattr(dataset_type, "__name__", None)
    cls = DATASETS.get(dataset_type)
    short = getattr(cls, "METAINFO", {}).get("dataset") if cls is not None else None
    return short or dataset_name(dataset_type)


def store_checkpoint_meta(path: Path, task: str, thresholds: dict) -> None:
    """Write ``task`` and ``thresholds`` into the checkpoint's meta (atomically)."""
    write_checkpoint_meta(path, {THRESHOLDS_META_KEY: thresholds, "adtool_task": task})


def run_task(
    cfg: Config,
    work_dir: str | os.PathLike,
    checkpoint: str | os.PathLike | None = None,
    resume: bool | str = False,
) -> dict:
    """Train (unless ``checkpoint`` is given), test, and write the results files.

    Args:
        cfg: A task config (``task`` != ``'anomaly'``), ``--data-root`` already applied.
        work_dir: Output folder; results go straight here (no categories).
        checkpoint: Test this saved model instead of training. Defaults to None.
        resume: Resume training from the work dir's last checkpoint (True) or a path.
            Defaults to False.

    Returns:
        The results dict written to ``<work_dir>/results.json``.
    """
    task = task_of(cfg)
    work_dir = Path(work_dir)
    runner = build_task_runner(cfg, work_dir, checkpoint=checkpoint, resume=resume)
    atomic_write_text(work_dir / "config.py", runner.cfg.pretty_text)
    train_s = 0.0
    n_train = None
    train_info = None
    if checkpoint is None and runner.cfg.get("train_cfg"):
        start = time.perf_counter()
        runner.train()
        train_s = time.perf_counter() - start
        n_train = len(runner.train_dataloader.dataset)
        last = last_checkpoint(work_dir)
        train_info = {
            "epochs": runner.epoch,
            "iters": runner.iter,
            "checkpoint": None if last is None else str(last),
        }
    start = time.perf_counter()
    runner.test()
    test_s = time.perf_counter() - start
    metric = runner.test_evaluator.metrics[0]
    report = getattr(metric, "last_report", None)
    if not isinstance(report, dict) or "metrics" not in report:
        raise ConfigError(
            f"test metric {type(metric).__name__} keeps no last_report; task configs need "
            "the task metric (e.g. ClassificationMetric) as test_evaluator"
        )
    n_test = report.get("n_test") or len(runner.test_dataloader.dataset)
    dataset_cfg = _test_dataset_cfg(runner.cfg)
    results = {
        "task": task,
        "model": runner.cfg.model["type"],
        "config": _config_stem(runner.cfg),
        "dataset": _dataset_short_name(dataset_cfg.get("type")),
        "data_root": dataset_cfg.get("data_root"),
        "metrics": report["metrics"],
        "thresholds": report.get("thresholds", {}),
        "timing": {
            "train_s": round(train_s, 3),
            "test_s": round(test_s, 3),
            "test_images_per_s": round(n_test / test_s, 3) if test_s > 0 else None,
        },
        "n_train": n_train,
        "n_test": n_test,
    }
    if train_info is not None:
        results["train"] = train_info
        thresholds = inference_thresholds(report)
        if train_info["checkpoint"] is not None:
            store_checkpoint_meta(Path(train_info["checkpoint"]), task, thresholds)
    if checkpoint is not None:
        results["checkpoint"] = str(checkpoint)
    results = jsonable(results)
    atomic_write_text(work_dir / "results.json", json.dumps(results, indent=2) + "\n")
    metric.write_outputs(work_dir, results)
    return results


# ---------------------------------------------------------------------------- inference


def _input_paths(inputs: str | os.PathLike | Iterable, exclude: Path | None = None) -> list[Path]:
    """Image files of ``inputs`` (files, folders searched recursively), ``exclude`` skipped."""
    from adtool.datasets import is_image_file

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = [Path(i) for i in inputs]
    skip = exclude.resolve() if exclude is not None else None
    paths: list[Path] = []
    for path in inputs:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and is_image_file(p))
            if skip is not None:
                found = [p for p in found if skip not in p.resolve().parents]
            paths += found
        elif path.is_file():
            if not is_image_file(path):
                raise DataError(f"{path} is not an image file (png, jpg, bmp, tif, ...)")
            paths.append(path)
        else:
            raise DataError(f"input {path} not found; pass an image file or a folder of images")
    if not paths:
        raise DataError(f"no images found in {', '.join(str(i) for i in inputs)}")
    return paths


def _infer_pipeline(cfg: Config, task: str):
    from adtool.registry import TRANSFORMS

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


def load_task_model(cfg: Config, checkpoint: str | os.PathLike, device: str = "cpu"):
    """The config's wrapper with the checkpoint's weights, in eval mode, and the meta."""
    from mmengine.runner.checkpoint import load_checkpoint

    from adtool.models.hf.base import skip_pretrained_weights
    from adtool.registry import MODELS

    register_all_modules()
    if not Path(checkpoint).is_file():
        raise DataError(f"checkpoint {checkpoint} not found; pass the .pth a training run wrote")
    with skip_pretrained_weights():
        model = MODELS.build(copy.deepcopy(cfg.model))
    state = load_checkpoint(model, str(checkpoint), map_location="cpu", strict=True)
    model.to(device).eval()
    return model, state.get("meta", {}) or {}


def _unique_stems(paths: list[Path]) -> list[str]:
    """Output names: the file stem, or ``<folder>_<stem>`` where stems repeat (then a
    counter if even those repeat)."""
    counts: dict[str, int] = {}
    for path in paths:
        counts[path.stem] = counts.get(path.stem, 0) + 1
    names, used = [], set()
    for p in paths:
        name = p.stem if counts[p.stem] == 1 else f"{p.parent.name}_{p.stem}"
        base, k = name, 1
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        names.append(name)
    return names


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
) -> dict:
    """Predict on an image or a folder; write predictions (CSV + JSON) and pictures.

    Writes into ``out_dir``: ``predictions.json`` (one entry per image),
    ``predictions.csv`` (one row per image; detection: one row per kept box) and
    ``pictures/<stem>.png``: classification the image with its label and confidence,
    detection the boxes with score >= the threshold, segmentation the mask overlaid (the
    label mask itself in ``masks/<stem>.png``), super-resolution the upscaled image.

    Args:
        cfg: The task config the checkpoint was trained with.
        checkpoint: A checkpoint written by :func:`run_task`.
        inputs: An image file, a folder of images, or a list of either.
        out_dir: Output folder.
        threshold: Detection score threshold. Defaults to the best-F1 threshold stored in
            the checkpoint's meta, else 0.5.
        device: Torch device. Defaults to ``'cpu'``.

    Returns:
        ``{"task", "checkpoint", "threshold", "n_images", "predictions": [...]}``.
    """
    from mmengine.dataset import pseudo_collate

    task = task_of(cfg)
    out_dir = Path(out_dir)
    paths = _input_paths(inputs, exclude=out_dir)
    model, meta = load_task_model(cfg, checkpoint, device)
    classes = _class_names(meta, cfg)
    if task == "detection" and threshold is None:
        threshold = (meta.get(THRESHOLDS_META_KEY) or {}).get("score", 0.5)
    pipeline = _infer_pipeline(cfg, task)
    predictions = []
    rows: list[dict] = []
    for path, stem in zip(paths, _unique_stems(paths)):
        batch = pseudo_collate([pipeline(path)])
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
    summary = {
        "task": task,
        "checkpoint": str(checkpoint),
        "threshold": threshold,
        "n_images": len(paths),
        "predictions": predictions,
    }
    summary = jsonable(summary)
    atomic_write_text(out_dir / "predictions.json", json.dumps(summary, indent=2) + "\n")
    _write_csv(out_dir / "predictions.csv", rows)
    return summary


def _write_csv(path: Path, rows: list[dict]) -> None:
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields or ["image"])
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())
