"""Score new images with a trained model: ``tools/infer.py``.

Layer 4 of ``adtool.apis``. :func:`infer` builds the model from its config, loads the
checkpoint (:func:`adtool.apis.checkpoints.load_model`), runs the config's test pipeline
without mask or label on each image, and writes ``predictions.csv`` (path, score, label
at the stored threshold, status) and an anomaly-map overlay per image. The threshold comes
from the model's ``PostProcessor`` (stored in the checkpoint at test time), else the
checkpoint's meta, else ``thresholds.json`` beside the checkpoint (older runs); see
:mod:`adtool.apis.thresholds`. An image that cannot be read is reported (``status``
column, ``failed`` rows) and the others are scored, unless ``strict``. A config whose
``task`` is not ``'anomaly'`` goes to :func:`adtool.apis.tasks.infer_task`.
"""

from __future__ import annotations

import copy
import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from adtool.apis.checkpoints import load_model
from adtool.apis.core import ensure_writable, load_config, use_dataset
from adtool.apis.inputs import IMAGE_EXTENSIONS, list_inputs
from adtool.apis.tasks import infer_task
from adtool.apis.thresholds import (
    META_KEY,
    THRESHOLD_NAMES,
    THRESHOLDS_FILE,
    choose_threshold,
    is_inside,
    load_thresholds,
    stored_thresholds,
)
from adtool.deploy.inferencer import INFERENCERS
from adtool.errors import ConfigError, DataError
from adtool.fileio import atomic_write_text
from adtool.registry import TRANSFORMS

__all__ = [
    "CSV_COLUMNS",
    "IMAGE_EXTENSIONS",
    "META_KEY",
    "THRESHOLDS_FILE",
    "THRESHOLD_NAMES",
    "build_inference_pipeline",
    "choose_threshold",
    "format_predictions_csv",
    "infer",
    "list_inputs",
    "load_thresholds",
]

# Pipeline steps that read ground truth; inference has none.
_LABEL_STEPS = ("LoadAnomalyMask",)
#: ``backend`` values of :func:`infer`.
BACKENDS = ("pytorch", *INFERENCERS)
CSV_COLUMNS = ("path", "score", "label", "threshold_name", "threshold_value", "overlay", "status")
#: ``--threshold nfa``: label by the a-contrario NFA map (U-Flow), ``nfa_score > 0``.
NFA_THRESHOLD = "nfa"


def _group_names(paths: Sequence[Path], inputs: Sequence[str | os.PathLike]) -> list[str]:
    """Overlay sub-folder per image: its folder relative to the input folder given."""
    roots = [Path(i) for i in inputs if Path(i).is_dir()]
    groups = []
    for path in paths:
        root = next((r for r in roots if is_inside(path, r)), None)
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


def _compact(anomaly_map: torch.Tensor) -> np.ndarray:
    """The map as float16 (bounds memory for large folders, as AnomalyMetric does), or
    float32 when a value is beyond float16's range."""
    amap = anomaly_map.detach().float().cpu().numpy()
    if amap.size and float(np.abs(amap).max()) > np.finfo(np.float16).max:
        return amap
    return amap.astype(np.float16)


def format_predictions_csv(rows: Sequence[dict]) -> str:
    """``predictions.csv``: one row per image (see :data:`CSV_COLUMNS`); an image that
    could not be read has no score and ``status`` ``error: <why>``."""
    buf = io.StringIO()
    # ``nfa_score`` (U-Flow's a-contrario score) is a column only when some row has one.
    columns = CSV_COLUMNS + (("nfa_score",) if any("nfa_score" in r for r in rows) else ())
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        out = {k: ("" if row.get(k) is None else row[k]) for k in columns}
        for key in ("score", "nfa_score"):
            if row.get(key) is not None:
                out[key] = f"{float(row[key]):.9g}"
        if row.get("threshold_value") is not None:
            out["threshold_value"] = f"{float(row['threshold_value']):.9g}"
        out["status"] = row.get("status") or "ok"
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
    dataset: str | None = None,
    overlays: bool = True,
    strict: bool = False,
    backend: str = "pytorch",
) -> list[dict]:
    """Score images with a trained model; write ``predictions.csv`` and overlays.

    Args:
        config: Config path, stem or model name, or a loaded ``Config``.
        checkpoint: Checkpoint written by training.
        inputs: An image, a folder (searched recursively) or a list of them.
        out_dir: Output folder: ``predictions.csv`` and ``maps/<folder>/<image>.png``.
        threshold: None (the threshold stored at test time, see the module docstring; no
            labels if none), a threshold name (``f1_percentile``, ``f1_uniform``,
            ``youden_j``, ``percentile_95``), ``'nfa'`` (a model with an a-contrario NFA
            map, U-Flow: an image is anomalous when some pixel is detected, ``nfa_score >
            0``; PyTorch backend only) or a number. Defaults to None.
        thresholds_from: A ``results.json`` or ``thresholds.json`` whose thresholds
            replace the stored ones. Defaults to None.
        device: Torch device. Defaults to ``'cpu'``.
        cfg_options: ``--cfg-options`` overrides. Defaults to None.
        dataset: The dataset preset the model was trained with (``--dataset``), as on
            train and test; the model's own pipeline is used either way. Defaults to None.
        overlays: Write an overlay PNG per image. Defaults to True.
        strict: Stop at the first image that cannot be read (a DataError); otherwise it
            gets a row with ``status`` ``error: ...`` and no score. Defaults to False.
        backend: ``'pytorch'`` (``checkpoint`` is a ``.pth``), ``'onnxruntime'`` or
            ``'openvino'`` (``checkpoint`` is a ``.onnx`` from ``tools/export.py``, run by
            :class:`~adtool.deploy.OnnxInferencer` or
            :class:`~adtool.deploy.OpenVinoInferencer`; its thresholds are the ones stored
            at export). Same pipeline, rows and overlays either way. Defaults to
            ``'pytorch'``.

    Returns:
        One dict per image: ``path``, ``score`` (None when unreadable), ``label`` (0/1 or
        None), ``threshold_name``, ``threshold_value``, ``overlay``, ``status``. A config
        whose ``task`` is not ``'anomaly'`` goes to :func:`adtool.apis.tasks.infer_task`
        and returns its summary dict instead.

    Raises:
        ConfigError: when ``out_dir`` cannot be written (before any work), or for a
            threshold that is unknown or not stored.
        DataError: for a missing or foreign checkpoint, no inputs, or (``strict``) an
            unreadable image.
    """
    cfg = config if isinstance(config, Config) else load_config(config, cfg_options)
    if dataset is not None:
        use_dataset(cfg, dataset)
    out = ensure_writable(out_dir, flag="--out")
    task = cfg.get("task", "anomaly")
    if task != "anomaly":
        if threshold is not None:
            try:
                threshold = float(threshold)
            except ValueError:
                raise ConfigError(
                    f"--threshold for a '{task}' config is a number, got '{threshold}'"
                ) from None
        return infer_task(
            cfg, checkpoint, inputs, out, threshold=threshold, device=device, strict=strict
        )

    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend '{backend}'; use one of {', '.join(BACKENDS)}")
    use_nfa = isinstance(threshold, str) and threshold.strip().lower() == NFA_THRESHOLD
    if use_nfa and backend != "pytorch":
        raise ConfigError(
            "--threshold nfa reads the model's NFA map, which exported graphs do not carry; "
            "use --backend pytorch with the .pth checkpoint"
        )
    paths = list_inputs(inputs, exclude=out)
    nfa_scores: list[float] = []
    if backend in INFERENCERS:
        session = INFERENCERS[backend](checkpoint)
        exported = session.metadata.get("model")
        if exported != cfg.model.get("type"):
            raise ConfigError(
                f"{checkpoint} holds a {exported} model, but the config builds "
                f"{cfg.model.get('type')}; pass the config it was exported from"
            )
        record, source = session.thresholds, f"ONNX file {checkpoint}"
        if record is not None:
            record = {"model": exported, **record}

        def score_batch(batch: dict) -> tuple[list[float], list[torch.Tensor | None]]:
            got = session.run(torch.stack(batch["inputs"]))
            scores = [float(s) for s in got["score"]]
            if "anomaly_map" not in got:
                return scores, [None] * len(scores)
            return scores, [torch.from_numpy(m) for m in got["anomaly_map"]]

    else:
        model, loaded = load_model(cfg, checkpoint, device)
        record, source = stored_thresholds(model, loaded, checkpoint)

        def score_batch(batch: dict) -> tuple[list[float], list[torch.Tensor | None]]:
            samples = model.test_step(batch)
            if use_nfa:
                if any("nfa_score" not in s for s in samples):
                    raise ConfigError(
                        f"--threshold nfa needs a model with an a-contrario NFA map (U-Flow); "
                        f"{cfg.model.get('type')} has none: use a score threshold instead"
                    )
                nfa_scores.extend(float(s.nfa_score) for s in samples)
            return [float(s.pred_score) for s in samples], [s.get("anomaly_map") for s in samples]

    if thresholds_from is not None:
        record, source = load_thresholds(thresholds_from), str(thresholds_from)
    model_type = cfg.model.get("type")
    if record is not None and record.get("model") not in (None, model_type):
        raise ConfigError(
            f"the thresholds in {source} were measured for {record['model']}, but the config "
            f"builds {model_type}; pass the results.json or thresholds.json of this model's test"
        )
    if use_nfa:
        # The decision is log10 NFA < log10 epsilon somewhere, i.e. nfa_score > 0.
        name, value = NFA_THRESHOLD, 0.0
    else:
        name, value = choose_threshold(record, threshold, source)
    pipeline = build_inference_pipeline(cfg)
    batch_size = int((cfg.get("test_dataloader") or {}).get("batch_size") or 1)

    # Read every image first: one that cannot be read is reported, the others scored.
    status: dict[Path, str] = {}
    items: list[tuple[Path, dict]] = []
    for path in paths:
        try:
            items.append((path, pipeline(path)))
        except DataError as e:
            if strict:
                raise
            status[path] = f"error: {e}"
    good = [p for p, _ in items]
    scores: list[float] = []
    maps: list[np.ndarray] = []
    images: list[np.ndarray] = []
    for start in range(0, len(items), batch_size):
        batch = pseudo_collate([item for _, item in items[start : start + batch_size]])
        if overlays:
            images.extend(img.permute(1, 2, 0).numpy() for img in batch["inputs"])
        batch_scores, batch_maps = score_batch(batch)
        scores.extend(batch_scores)
        if overlays:
            maps.extend(_compact(m) for m in batch_maps if m is not None)

    overlay_paths: list[Path | None] = [None] * len(good)
    if overlays and good and len(maps) == len(good):
        from adtool.visualization.overlays import save_overlays

        input_list = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
        groups = _group_names(good, input_list)
        pixel_threshold = (record or {}).get("pixel_threshold")
        written = save_overlays(
            {
                "maps": np.stack(maps),
                "masks": None,
                "img_paths": [str(p) for p in good],
                "defect_types": groups,
                "scores": scores,
                "images": images,
            },
            out,
            max_per_defect=len(good),
            threshold=pixel_threshold,
        )
        overlay_paths = _overlay_paths(written, groups)

    scored = {p: (score, overlay) for p, score, overlay in zip(good, scores, overlay_paths)}
    nfa_of = dict(zip(good, nfa_scores))
    rows = []
    for path in paths:
        score, overlay = scored.get(path, (None, None))
        extra: dict = {}
        if use_nfa:
            nfa = nfa_of.get(path)
            extra["nfa_score"] = nfa
            label = None if nfa is None else int(nfa > value)
        else:
            label = None if value is None or score is None else int(score >= value)
        rows.append(
            {
                "path": str(path),
                "score": score,
                "label": label,
                "threshold_name": name,
                "threshold_value": value,
                "overlay": None if overlay is None else str(overlay),
                "status": status.get(path, "ok"),
                **extra,
            }
        )
    atomic_write_text(out / "predictions.csv", format_predictions_csv(rows))
    return rows
