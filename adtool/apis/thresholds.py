"""A test run's thresholds, kept with the model they were measured for.

Layer 2 of ``adtool.apis`` (above :mod:`~adtool.apis.checkpoints`). After every test
(:func:`adtool.apis.core.run_category`) :func:`attach_thresholds` stores the four
thresholds, the one the confusion matrix used and the pixel threshold

* in the model's ``PostProcessor`` (``model.postprocessor.set_thresholds``), whose buffers
  are written into the tested checkpoint's ``state_dict`` (``postprocessor.*``), so the
  checkpoint alone gives labels;
* in the same checkpoint's ``meta['adtool_thresholds']`` (read by older tools); a task
  config's metric may name its own instead (detection: ``{"score": best-F1 threshold}``);
* always in ``<work_dir>/thresholds.json``.

The checkpoint is only rewritten when it lives in the run's work dir (a trained run's last
or best checkpoint): a user's own checkpoint given to ``tools/test.py`` is never modified.
:func:`stored_thresholds` reads them back in that order of preference.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from adtool.apis.checkpoints import last_checkpoint, unwrap, update_checkpoint
from adtool.errors import ConfigError, DataError
from adtool.fileio import atomic_write_text

META_KEY = "adtool_thresholds"
TASK_META_KEY = "adtool_task"
THRESHOLDS_FILE = "thresholds.json"
THRESHOLD_NAMES = ("f1_percentile", "f1_uniform", "youden_j", "percentile_95")
# Written for normal-only data (adtool.evaluation.thresholds.percentile_thresholds); kept in
# the checkpoint meta and thresholds.json (the PostProcessor's buffers hold the four above).
EXTRA_THRESHOLD_NAMES = ("percentile_99", "percentile_99_9")


def is_inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """True when ``path`` resolves to a place inside ``folder``."""
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
    except ValueError:
        return False
    return True


def inference_thresholds(report: dict) -> dict:
    """The thresholds a task model's inference needs (detection: best-F1 ``score``), from a
    task metric's ``last_report``: its ``inference_thresholds``, else ``thresholds.best_f1``."""
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
    values = {}
    for name in THRESHOLD_NAMES:
        entry = thresholds.get(name)
        values[name] = entry.get("value") if isinstance(entry, dict) else None
    for name in EXTRA_THRESHOLD_NAMES:
        entry = thresholds.get(name)
        if isinstance(entry, dict):
            values[name] = entry.get("value")
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


def tested_checkpoint(
    work_dir: str | os.PathLike, results: dict, checkpoint: str | os.PathLike | None
) -> Path | None:
    """The checkpoint whose weights produced ``results``, or None when unknown.

    A given ``checkpoint`` (tools/test.py) is it; after training it is the best
    checkpoint when ``results['train']['tested'] == 'best'``, else the last one.
    """
    if checkpoint is not None:
        return Path(checkpoint)
    train = results.get("train") or {}
    if train.get("tested") == "best" and train.get("best_checkpoint"):
        return Path(train["best_checkpoint"])
    return last_checkpoint(work_dir)


def set_model_thresholds(model: torch.nn.Module, record: dict) -> dict:
    """Put ``record`` into the model's ``PostProcessor``; its buffers, keyed as in the
    model's state_dict (empty for a model without a post-processor)."""
    post = getattr(unwrap(model), "postprocessor", None)
    if post is None or not hasattr(post, "set_thresholds"):
        return {}
    values = {k: v for k, v in record["values"].items() if k in THRESHOLD_NAMES}
    chosen = record["chosen"] if record["chosen"] in THRESHOLD_NAMES else None
    post.set_thresholds(values, chosen, pixel=record["pixel_threshold"])
    stats = record.get("normalization")
    if stats and hasattr(post, "set_normalization"):
        post.set_normalization(
            stats["image_min"], stats["image_max"], stats.get("map_min"), stats.get("map_max")
        )
    return {f"postprocessor.{k}": v for k, v in post.state_dict().items()}


def score_statistics(arrays: dict | None) -> dict | None:
    """Min/max of a test's image scores and map values (the post-processor's normalisation
    statistics, which an exported graph needs for its normalised outputs), or None.

    Args:
        arrays: The test metric's ``last_arrays`` (``scores``, ``maps``), or None.
    """
    scores = None if not arrays else arrays.get("scores")
    if scores is None or len(scores) == 0:
        return None
    scores = np.asarray(scores, dtype=np.float64)
    maps = arrays.get("maps")
    has_map = maps is not None and np.size(maps) > 0
    return {
        "image_min": float(scores.min()),
        "image_max": float(scores.max()),
        "map_min": float(np.min(maps)) if has_map else None,
        "map_max": float(np.max(maps)) if has_map else None,
    }


def model_thresholds(model: torch.nn.Module) -> dict | None:
    """The thresholds in the model's ``PostProcessor``, or None when never set."""
    post = getattr(unwrap(model), "postprocessor", None)
    if post is None or not hasattr(post, "thresholds"):
        return None
    return post.thresholds()


def attach_thresholds(
    work_dir: str | os.PathLike,
    results: dict,
    checkpoint: str | os.PathLike | None = None,
    *,
    model: torch.nn.Module | None = None,
    report: dict | None = None,
    task: str = "anomaly",
    arrays: dict | None = None,
) -> dict:
    """Store a test run's thresholds with its model (see the module docstring).

    Args:
        work_dir: The run's output folder (``results.json`` goes there).
        results: The results dict of the test.
        checkpoint: The checkpoint given to the test (tools/test.py), or None after
            training. Defaults to None.
        model: The tested model; its post-processor receives the thresholds. Defaults to
            None.
        report: The test metric's ``last_report`` (task configs keep their inference
            thresholds there). Defaults to None.
        task: The config's task, kept in the checkpoint meta. Defaults to ``'anomaly'``.
        arrays: The test metric's ``last_arrays``: their score and map min/max become the
            record's ``normalization`` (and the post-processor's statistics). Defaults to
            None.

    Returns:
        The stored record; its ``checkpoint`` is None when no checkpoint file was
        updated (an external checkpoint, or a run without one).
    """
    work_dir = Path(work_dir)
    tested = tested_checkpoint(work_dir, results, checkpoint)
    own = tested is not None and tested.is_file() and is_inside(tested, work_dir)
    # A task metric names the thresholds its inference uses (detection: {"score": x});
    # otherwise the four anomaly thresholds.
    record = inference_thresholds(report or {}) or threshold_record(results, tested)
    stats = score_statistics(arrays) if "values" in record else None
    if stats is not None:
        record["normalization"] = stats
    state = set_model_thresholds(model, record) if model is not None and "values" in record else {}
    if own:
        update_checkpoint(tested, meta={META_KEY: record, TASK_META_KEY: task}, state=state)
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


def stored_thresholds(
    model: torch.nn.Module, loaded: dict, checkpoint: str | os.PathLike
) -> tuple[dict | None, str]:
    """The thresholds stored with a checkpoint and where they came from.

    In order: the model's ``PostProcessor`` (its buffers in the checkpoint), the
    checkpoint's ``meta['adtool_thresholds']``, then ``thresholds.json`` beside the
    checkpoint (runs written before either existed). ``(None, source)`` when none.
    """
    source = f"checkpoint {checkpoint}"
    record = model_thresholds(model)
    if record is not None:
        meta = (loaded.get("meta") or {}).get(META_KEY) or {}
        # The post-processor holds values only; the meta knows which model they belong to
        # and keeps the thresholds the buffers have no slot for (percentile_99, ...).
        values = {**(meta.get("values") or {}), **record["values"]}
        return {**meta, **record, "values": values}, source
    record = (loaded.get("meta") or {}).get(META_KEY)
    if record is not None:
        return record, source
    beside = Path(checkpoint).parent / THRESHOLDS_FILE
    if beside.is_file():
        return load_thresholds(beside), str(beside)
    return None, source


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
    threshold = str(threshold).replace(".", "_")  # percentile_99.9 -> percentile_99_9
    known = THRESHOLD_NAMES + EXTRA_THRESHOLD_NAMES
    if threshold not in known:
        raise ConfigError(
            f"unknown threshold '{threshold}'; use one of {', '.join(known)} or a number"
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
