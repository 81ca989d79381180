"""Score new images with a trained model, and keep a model's test thresholds with it.

:func:`attach_thresholds` runs after every test (:func:`adtool.apis.core.run_category`):
the four thresholds of the results, the one the confusion matrix used (``f1_percentile``
unless undefined) and the pixel threshold are stored

* in the tested checkpoint's ``meta['adtool_thresholds']`` when that checkpoint lives in
  the run's work dir (a trained run's last or best checkpoint; rewritten atomically);
* always in ``<work_dir>/thresholds.json`` (so a user's own checkpoint, tested with
  ``tools/test.py``, is never modified).

:func:`infer` (``tools/infer.py``) builds the model from its config, loads the checkpoint,
runs the config's test pipeline without mask or label on each image, and writes
``predictions.csv`` (path, score, label at the stored threshold) and an anomaly-map
overlay per image.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from adtool.engine.compat import load_checkpoint_file
from adtool.errors import ConfigError, DataError
from adtool.fileio import atomic_path, atomic_write_text

META_KEY = "adtool_thresholds"
THRESHOLDS_FILE = "thresholds.json"
THRESHOLD_NAMES = ("f1_percentile", "f1_uniform", "youden_j", "percentile_95")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# Pipeline steps that read ground truth; inference has none.
_LABEL_STEPS = ("LoadAnomalyMask",)
CSV_COLUMNS = ("path", "score", "label", "threshold_name", "threshold_value", "overlay")


# ------------------------------------------------------------------ thresholds store


def threshold_record(results: dict, checkpoint: str | os.PathLike | None = None) -> dict:
    """The thresholds of a test run in the form stored with its model.

    Args:
        results: A ``results.json`` dict.
        checkpoint: The checkpoint that was tested. Defaults to None.

    Returns:
        ``{"chosen", "value", "values": {name: value}, "pixel_threshold", "model",
        "config", "dataset", "category", "image_AUROC", "checkpoint"}``.
    """
    thresholds = results.get("thresholds") or {}
    confusion = results.get("confusion") or {}
    values = {name: (thresholds.get(name) or {}).get("value") for name in THRESHOLD_NAMES}
    chosen = confusion.get("threshold")
    value = confusion.get("threshold_value", values.get(chosen))
    return {
        "chosen": chosen,
        "value": value,
        "values": values,
        "pixel_threshold": (results.get("pixel") or {}).get("threshold"),
        "model": results.get("model"),
        "config": results.get("config"),
        "dataset": results.get("dataset"),
        "category": results.get("category"),
        "image_AUROC": (results.get("image") or {}).get("AUROC"),
        "checkpoint": None if checkpoint is None else str(checkpoint),
    }


def _is_inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def tested_checkpoint(
    work_dir: str | os.PathLike, results: dict, checkpoint: str | os.PathLike | None
) -> Path | None:
    """The checkpoint whose weights produced ``results``, or None when unknown.

    A given ``checkpoint`` (tools/test.py) is it; after training it is the best
    checkpoint when ``results['train']['tested'] == 'best'``, else the last one
    (mmengine's ``last_checkpoint`` file names it).
    """
    if checkpoint is not None:
        return Path(checkpoint)
    train = results.get("train") or {}
    if train.get("tested") == "best" and train.get("best_checkpoint"):
        return Path(train["best_checkpoint"])
    return last_checkpoint(work_dir)


def last_checkpoint(work_dir: str | os.PathLike) -> Path | None:
    """The checkpoint that mmengine's ``<work_dir>/last_checkpoint`` names, if it exists."""
    pointer = Path(work_dir) / "last_checkpoint"
    if not pointer.is_file():
        return None
    text = pointer.read_text(encoding="utf-8").strip()
    return Path(text) if text and Path(text).is_file() else None


def write_checkpoint_meta(path: str | os.PathLike, updates: dict) -> None:
    """Merge ``updates`` into ``checkpoint['meta']`` of an mmengine checkpoint, atomically."""
    path = Path(path)
    checkpoint = load_checkpoint_file(path)
    meta = checkpoint.get("meta")
    if not isinstance(meta, dict):
        meta = {}
        checkpoint["meta"] = meta
    meta.update(updates)
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def attach_thresholds(
    work_dir: str | os.PathLike, results: dict, checkpoint: str | os.PathLike | None = None
) -> dict:
    """Store a test run's thresholds with its model (see the module docstring).

    Args:
        work_dir: The category's output folder (holds ``results.json``).
        results: The results dict just written.
        checkpoint: The checkpoint given to the test (tools/test.py), or None after
            training. Defaults to None.

    Returns:
        The stored record; its ``checkpoint`` is None when no checkpoint file was
        updated (an external checkpoint, or a run without one).
    """
    work_dir = Path(work_dir)
    tested = tested_checkpoint(work_dir, results, checkpoint)
    own = tested is not None and tested.is_file() and _is_inside(tested, work_dir)
    record = threshold_record(results, tested)
    if own:
        write_checkpoint_meta(tested, {META_KEY: record})
    atomic_write_text(
        work_dir / THRESHOLDS_FILE,
        json.dumps({**record, "in_checkpoint_meta": own}, indent=2) + "\n",
    )
    return record


def load_thresholds(path: str | os.PathLike) -> dict:
    """A threshold record from ``thresholds.json`` or a ``results.json``.

    Raises:
        DataError: when the file is missing, not JSON, or holds no thresholds.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(
            f"thresholds file {path} not found; pass the results.json or thresholds.json of "
            "the test run"
        ) from None
    except (OSError, ValueError) as e:
        raise DataError(f"thresholds file {path} cannot be read ({e})") from None
    if isinstance(data, dict) and isinstance(data.get("values"), dict):
        return data
    if isinstance(data, dict) and isinstance(data.get("thresholds"), dict):
        return threshold_record(data, data.get("checkpoint"))
    raise DataError(
        f"{path} holds no thresholds; pass the results.json or thresholds.json of a test run"
    )


def choose_threshold(
    record: dict | None, threshold: str | float | None, source: str = "the checkpoint"
) -> tuple[str | None, float | None]:
    """(name, value) of the threshold to label with; (None, None) for no labels.

    Args:
        record: Stored thresholds (:func:`threshold_record`), or None.
        threshold: None (the stored chosen threshold), a name of
            :data:`THRESHOLD_NAMES`, or a number (string or float).
        source: Where ``record`` came from, for error messages. Defaults to
            ``'the checkpoint'``.

    Raises:
        ConfigError: for an unknown name or a name without a stored value.
    """
    if threshold is None:
        if record is None or record.get("value") is None:
            return None, None
        return record.get("chosen"), float(record["value"])
    if isinstance(threshold, int | float):
        return "value", float(threshold)
    try:
        return "value", float(threshold)
    except ValueError:
        pass
    if threshold not in THRESHOLD_NAMES:
        raise ConfigError(
            f"unknown threshold '{threshold}'; use one of {', '.join(THRESHOLD_NAMES)} or a number"
        )
    if record is None:
        raise ConfigError(
            f"{source} holds no stored thresholds; pass --thresholds-from results.json "
            "(or thresholds.json) of its test run, or --threshold VALUE"
        )
    value = (record.get("values") or {}).get(threshold)
    if value is None:
        raise ConfigError(
            f"threshold '{threshold}' is undefined in {source} (one-class test split?); "
            "pick another or pass --threshold VALUE"
        )
    return threshold, float(value)


# ----------------------------------------------------------------------- inference


def list_inputs(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    exclude: str | os.PathLike | None = None,
) -> list[Path]:
    """Image files: each file as given, each folder's images recursively, sorted.

    Args:
        inputs: Image files and/or folders.
        exclude: A folder whose images are skipped when found in an input folder (the
            output folder, so that a rerun does not score its own overlays). Defaults to
            None.

    Raises:
        DataError: for a missing path, a file that is not an image, or no image at all.
    """
    if isinstance(inputs, str | os.PathLike):
        inputs = [inputs]
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in IMAGE_EXTENSIONS
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
                and not (exclude is not None and _is_inside(p, Path(exclude)))
            )
        elif path.is_file():
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                raise DataError(
                    f"{path} is not an image ({', '.join(IMAGE_EXTENSIONS)}); pass images or "
                    "a folder"
                )
            found.append(path)
        else:
            raise DataError(f"input {path} not found; pass an image file or a folder of images")
    if not found:
        raise DataError(
            f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {', '.join(map(str, inputs))}"
        )
    return found


def _group_names(paths: Sequence[Path], inputs: Sequence[str | os.PathLike]) -> list[str]:
    """Overlay sub-folder per image: its folder relative to the input folder given."""
    roots = [Path(i) for i in inputs if Path(i).is_dir()]
    groups = []
    for path in paths:
        root = next((r for r in roots if _is_inside(path, r)), None)
        if root is None:
            groups.append(path.parent.name or "images")
            continue
        rel = path.resolve().parent.relative_to(root.resolve())
        groups.append("_".join(rel.parts) if rel.parts else (root.resolve().name or "images"))
    return groups


def _step_type(step) -> str:
    kind = step.get("type") if isinstance(step, dict) else step
    return kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))


def build_inference_pipeline(cfg):
    """The config's test pipeline without the steps that read masks or labels."""
    from adtool.registry import TRANSFORMS

    loader = cfg.get("test_dataloader") or {}
    steps = (loader.get("dataset") or {}).get("pipeline")
    if not steps:
        raise ConfigError("config has no test_dataloader.dataset.pipeline to run images through")
    kept = [copy.deepcopy(s) for s in steps if _step_type(s) not in _LABEL_STEPS]
    built = [TRANSFORMS.build(s) if isinstance(s, dict) else s for s in kept]

    def pipeline(path: Path) -> dict:
        results = {"img_path": str(path), "has_masks": False}
        for transform in built:
            results = transform(results)
        return results

    return pipeline


def load_model(cfg, checkpoint: str | os.PathLike, device: str = "cpu"):
    """The config's model with the checkpoint's weights, in eval mode, and the checkpoint.

    Raises:
        DataError: when the checkpoint is missing or does not fit the config's model.
    """
    from mmengine.runner.checkpoint import load_checkpoint

    from adtool.apis.core import _unload_pretrained
    from adtool.registry import MODELS, register_all_modules

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise DataError(f"checkpoint {checkpoint} not found; pass the .pth a training run wrote")
    register_all_modules()
    model_cfg = copy.deepcopy(cfg.model)
    _unload_pretrained(model_cfg)
    model = MODELS.build(model_cfg)
    try:
        loaded = load_checkpoint(
            model, str(checkpoint), map_location="cpu", strict=True, logger="silent"
        )
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:2])
        raise DataError(
            f"checkpoint {checkpoint} does not fit the model of this config ({detail[:200]}); "
            "pass the config the checkpoint was trained with"
        ) from None
    except DataError:  # load_checkpoint_file's one line already names the file
        raise
    except Exception as e:  # pickle/zip errors of a damaged or foreign file
        raise DataError(
            f"checkpoint {checkpoint} cannot be read ({type(e).__name__}: {e}); pass the .pth "
            "a training run wrote"
        ) from None
    return model.to(_device(device)).eval(), loaded


def _device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device '{device}'; use cpu or cuda[:N]") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' requested but CUDA is not available; use cpu")
    return dev


def _compact(anomaly_map: torch.Tensor) -> np.ndarray:
    """The map as float16 (bounds memory for large folders, as AnomalyMetric does), or
    float32 when a value is beyond float16's range."""
    amap = anomaly_map.detach().float().cpu().numpy()
    if amap.size and float(np.abs(amap).max()) > np.finfo(np.float16).max:
        return amap
    return amap.astype(np.float16)


def format_predictions_csv(rows: Sequence[dict]) -> str:
    """``predictions.csv``: one row per image (see :data:`CSV_COLUMNS`)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        out = {k: ("" if row.get(k) is None else row[k]) for k in CSV_COLUMNS}
        out["score"] = f"{float(row['score']):.9g}"
        if row.get("threshold_value") is not None:
            out["threshold_value"] = f"{float(row['threshold_value']):.9g}"
        writer.writerow(out)
    return buf.getvalue()


def _overlay_paths(written: list[Path], groups: list[str]) -> list[Path | None]:
    """Map :func:`save_overlays` output (groups sorted, images in order) back to images."""
    order = [i for group in sorted(set(groups)) for i, g in enumerate(groups) if g == group]
    paths: list[Path | None] = [None] * len(groups)
    if len(written) == len(order):
        for i, path in zip(order, written):
            paths[i] = path
    return paths


@torch.no_grad()
def infer(
    config,
    checkpoint: str | os.PathLike,
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    threshold: str | float | None = None,
    *,
    thresholds_from: str | os.PathLike | None = None,
    device: str = "cpu",
    cfg_options=None,
    overlays: bool = True,
) -> list[dict]:
    """Score images with a trained model; write ``predictions.csv`` and overlays.

    Args:
        config: Config path, stem or model name, or a loaded ``Config``.
        checkpoint: Checkpoint written by training.
        inputs: An image, a folder (searched recursively) or a list of them.
        out_dir: Output folder: ``predictions.csv`` and ``maps/<folder>/<image>.png``.
        threshold: None (the threshold stored at test time: the checkpoint's
            ``meta['adtool_thresholds']`` or ``thresholds_from``; no labels if none), a
            threshold name (``f1_percentile``, ``f1_uniform``, ``youden_j``,
            ``percentile_95``) or a number. Defaults to None.
        thresholds_from: A ``results.json`` or ``thresholds.json`` whose thresholds
            replace the checkpoint's. Defaults to None.
        device: Torch device. Defaults to ``'cpu'``.
        cfg_options: ``--cfg-options`` overrides. Defaults to None.
        overlays: Write an overlay PNG per image. Defaults to True.

    Returns:
        One dict per image: ``path``, ``score``, ``label`` (0/1 or None),
        ``threshold_name``, ``threshold_value``, ``overlay``. A config whose ``task`` is
        not ``'anomaly'`` goes to :func:`adtool.apis.tasks.infer_task` and returns its
        summary dict instead.
    """
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate

    from adtool.apis.core import load_config

    cfg = config if isinstance(config, Config) else load_config(config, cfg_options)
    task = cfg.get("task", "anomaly")
    if task != "anomaly":
        try:
            from adtool.apis.tasks import infer_task
        except ImportError:
            raise ConfigError(f"inference for '{task}' configs is not available yet") from None
        if threshold is not None:
            try:
                threshold = float(threshold)
            except ValueError:
                raise ConfigError(
                    f"--threshold for a '{task}' config is a number, got '{threshold}'"
                ) from None
        return infer_task(cfg, checkpoint, inputs, out_dir, threshold=threshold, device=device)

    paths = list_inputs(inputs, exclude=out_dir)
    model, loaded = load_model(cfg, checkpoint, device)
    if thresholds_from is not None:
        record, source = load_thresholds(thresholds_from), str(thresholds_from)
    else:
        record = (loaded.get("meta") or {}).get(META_KEY)
        source = f"checkpoint {checkpoint}"
    model_type = cfg.model.get("type")
    if record is not None and record.get("model") not in (None, model_type):
        raise ConfigError(
            f"the thresholds in {source} were measured for {record['model']}, but the config "
            f"builds {model_type}; pass the results.json or thresholds.json of this model's test"
        )
    name, value = choose_threshold(record, threshold, source)
    pipeline = build_inference_pipeline(cfg)
    batch_size = int((cfg.get("test_dataloader") or {}).get("batch_size") or 1)

    scores: list[float] = []
    maps: list[np.ndarray] = []
    images: list[np.ndarray] = []
    for start in range(0, len(paths), batch_size):
        batch = pseudo_collate([pipeline(p) for p in paths[start : start + batch_size]])
        if overlays:
            images.extend(img.permute(1, 2, 0).numpy() for img in batch["inputs"])
        for sample in model.test_step(batch):
            scores.append(float(sample.pred_score))
            if overlays and "anomaly_map" in sample:
                maps.append(_compact(sample.anomaly_map))

    out = Path(out_dir)
    overlay_paths: list[Path | None] = [None] * len(paths)
    if overlays and len(maps) == len(paths):
        from adtool.visualization.overlays import save_overlays

        input_list = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
        groups = _group_names(paths, input_list)
        pixel_threshold = (record or {}).get("pixel_threshold")
        written = save_overlays(
            {
                "maps": np.stack(maps),
                "masks": None,
                "img_paths": [str(p) for p in paths],
                "defect_types": groups,
                "scores": scores,
                "images": images,
            },
            out,
            max_per_defect=len(paths),
            threshold=pixel_threshold,
        )
        overlay_paths = _overlay_paths(written, groups)

    rows = []
    for path, score, overlay in zip(paths, scores, overlay_paths):
        rows.append(
            {
                "path": str(path),
                "score": score,
                "label": None if value is None else int(score >= value),
                "threshold_name": name,
                "threshold_value": value,
                "overlay": None if overlay is None else str(overlay),
            }
        )
    atomic_write_text(out / "predictions.csv", format_predictions_csv(rows))
    return rows
