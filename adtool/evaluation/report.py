"""Build, write and read the per-category results of a test run.

:func:`build_report` turns test arrays into the metric blocks of ``results.json``
(DESIGN.md, "Outputs: the results contract"); the caller adds ``model``, ``config``,
``dataset``, ``category``, ``timing`` and ``n_train``, then :func:`write_report` writes
``results.json``, ``results.txt``, ``histogram.png``, ``roc.png``, ``pr.png``,
``maps/`` and ``worst/`` (the highest-scored normal and lowest-scored anomalous images,
:func:`worst_cases`, which the HTML report shows). Every file is written to
``<name>.tmp`` in the same folder and moved into place with ``os.replace``, so a reader
never sees a half-written file.

Fields added to the contract (never renamed): ``pixel.F1_max``, ``pixel.threshold`` (the
pixel F1-optimal anomaly-map value, used to outline predicted regions in ``maps/``),
``pixel.fpr_limit``, ``confusion.threshold_value``, and ``note`` wherever a value is None
because the split lacks a class.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adtool.errors import DataError
from adtool.evaluation.functional import (
    ArrayLike,
    aupro,
    f1_max,
    has_both_classes,
    image_aupr,
    image_auroc,
    per_defect_auroc,
    pixel_auroc,
    pixel_f1_max,
    to_numpy,
)
from adtool.evaluation.thresholds import (
    NORMAL_ONLY_NOTE,
    compute_thresholds,
    confusion_report,
    nfa_threshold,
    normal_only_report,
)
from adtool.fileio import atomic_write_text

# Key order of results.json; keys not listed follow in the caller's order.
_KEY_ORDER = (
    "model", "config", "dataset", "category", "image", "pixel", "thresholds", "confusion",
    "per_defect", "timing", "n_train", "n_test",
)  # fmt: skip
_THRESHOLD_NAMES = ("f1_percentile", "f1_uniform", "youden_j", "percentile_95")


def build_report(
    scores: ArrayLike,
    labels: ArrayLike,
    defect_types: Sequence[str],
    maps: ArrayLike | None = None,
    masks: ArrayLike | None = None,
    pixel_metrics: bool = True,
    fpr_limit: float = 0.3,
    nfa_scores: ArrayLike | None = None,
    nfa_masks: ArrayLike | None = None,
) -> dict:
    """The metric blocks of ``results.json`` from test-set arrays.

    Args:
        scores: (N,) image scores.
        labels: (N,) 0 normal / 1 anomalous.
        defect_types: N defect names (``'good'`` for normal images).
        maps: (N, H, W) anomaly maps, or None.
        masks: (N, H, W) ground-truth masks, or None when the data has no masks.
        pixel_metrics: compute the ``pixel`` block when maps and masks exist. Defaults to
            True.
        fpr_limit: FPR bound of AUPRO. Defaults to 0.3.
        nfa_scores: (N,) per-image ``nfa_score`` of a model with an a-contrario threshold
            (U-Flow), or None. Given, ``thresholds`` gets a fifth entry, ``nfa``
            (:func:`~adtool.evaluation.thresholds.nfa_threshold`). Defaults to None.
        nfa_masks: (N, H, W) pixels that model detected, or None. Defaults to None.

    Returns:
        ``{"image", "pixel", "thresholds", "confusion", "per_defect", "n_test"}``; ``pixel``
        is None without masks, maps or with ``pixel_metrics=False``. Normal-only data
        (no anomalous image) adds ``normal_only`` (:func:`normal_only_report`: held-out
        score distribution, percentile thresholds with false-alarm rates) and the
        ``percentile_99`` / ``percentile_99_9`` thresholds.
    """
    s = to_numpy(scores, np.float64).ravel()
    y = (to_numpy(labels, np.float64).ravel() > 0).astype(np.int64)
    image = {"AUROC": image_auroc(s, y), "AUPR": image_aupr(s, y), "F1_max": f1_max(s, y)}
    if not has_both_classes(y):
        image["note"] = "image metrics need normal and anomalous images; this split has one class"
    pixel = None
    if pixel_metrics and maps is not None and masks is not None:
        best = pixel_f1_max(maps, masks)
        pixel = {
            "AUROC": pixel_auroc(maps, masks),
            "AUPRO": aupro(maps, masks, fpr_limit=fpr_limit),
            "F1_max": None if best is None else best[0],
            "threshold": None if best is None else best[1],
            "fpr_limit": fpr_limit,
        }
        if best is None:
            pixel["note"] = "pixel metrics need normal and defect pixels; the masks have one class"
    thresholds = compute_thresholds(s, y)
    normal_only = None
    if s.size and not y.any():
        normal_only = normal_only_report(s)
        image["note"] = NORMAL_ONLY_NOTE
        for name, entry in normal_only["percentile_thresholds"].items():
            thresholds[name] = {**(thresholds.get(name) or {}), **entry}
    if nfa_scores is not None:
        thresholds["nfa"] = nfa_threshold(nfa_scores, y, nfa_masks, masks)
    report = {
        "image": image,
        "pixel": pixel,
        "thresholds": thresholds,
        "confusion": confusion_report(s, y, thresholds),
        "per_defect": per_defect_auroc(s, y, defect_types),
        "n_test": int(s.size),
    }
    if normal_only is not None:
        report["normal_only"] = normal_only
    return report


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray | torch.Tensor):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"results.json cannot hold a value of type {type(obj).__name__}: {obj!r}")


def _ordered(report: dict) -> dict:
    head = {k: report[k] for k in _KEY_ORDER if k in report}
    return {**head, **{k: v for k, v in report.items() if k not in head}}


def format_results_json(report: dict) -> str:
    """``results.json`` text: the contract's keys first, then the rest as given."""
    return json.dumps(_ordered(report), indent=2, default=_json_default, allow_nan=False) + "\n"


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_results_txt(report: dict) -> str:
    """``results.txt``: the report laid out for a person.

    Args:
        report: a results dict (as written to ``results.json``); missing blocks are
            skipped.

    Returns:
        The text, ending with a newline.
    """
    lines = [
        f"model: {report.get('model', '-')}   config: {report.get('config', '-')}   "
        f"dataset: {report.get('dataset', '-')}   category: {report.get('category', '-')}",
        f"test images: {_fmt(report.get('n_test'))}   train images: {_fmt(report.get('n_train'))}",
        "",
    ]
    image = report.get("image") or {}
    lines.append("Image metrics")
    for key in ("AUROC", "AUPR", "F1_max"):
        lines.append(f"  {key:<10} {_fmt(image.get(key))}")
    if image.get("note"):
        lines.append(f"  note: {image['note']}")

    pixel = report.get("pixel")
    lines += ["", "Pixel metrics"]
    if pixel is None:
        lines.append("  none: the data has no ground-truth masks")
    else:
        limit = pixel.get("fpr_limit")
        aupro_name = "AUPRO" if limit is None else f"AUPRO@{limit:g}"
        for key, name in (("AUROC", "AUROC"), ("AUPRO", aupro_name), ("F1_max", "F1_max")):
            if key in pixel:
                lines.append(f"  {name:<10} {_fmt(pixel.get(key))}")
        if pixel.get("threshold") is not None:
            lines.append(f"  F1-optimal pixel threshold {pixel['threshold']:.6g}")
        if pixel.get("note"):
            lines.append(f"  note: {pixel['note']}")

    normal_only = report.get("normal_only")
    if normal_only:
        dist = normal_only.get("score_distribution") or {}
        lines += [
            "",
            f"Normal-only data: {normal_only.get('n_normal')} held-out normal images",
            "  scores  " + "  ".join(f"{k} {_fmt(v)}" for k, v in dist.items()),
            "  percentile threshold   value   expected false alarms   on held-out normals",
        ]
        for name, entry in (normal_only.get("percentile_thresholds") or {}).items():
            value = entry.get("value")
            lines.append(
                f"  {name:<20} {'n/a' if value is None else f'{value:.6g}':>8}"
                f"   {_fmt(entry.get('expected_false_alarm_rate'))}"
                f"                  {_fmt(entry.get('heldout_false_alarm_rate'))}"
                + (f"   ({entry['note']})" if entry.get("note") else "")
            )

    thresholds = report.get("thresholds") or {}
    lines += ["", "Thresholds (score >= threshold is anomalous)"]
    for name in _THRESHOLD_NAMES:
        entry = thresholds.get(name)
        if entry is None:
            continue
        value = entry.get("value")
        text = "n/a" if value is None else f"{value:.6g}"
        extra = [f"{k} {_fmt(v)}" for k, v in entry.items() if k not in ("value", "note")]
        if entry.get("note"):
            extra.append(f"note: {entry['note']}")
        lines.append(f"  {name:<14} {text:>12}" + (f"   ({', '.join(extra)})" if extra else ""))
    nfa = thresholds.get("nfa")
    if nfa:
        pixel_nfa = nfa.get("pixel") or {}
        lines.append(
            f"  {'nfa':<14} {'log10 NFA < log10 eps':>12}   (images: precision "
            f"{_fmt(nfa.get('precision'))}, recall {_fmt(nfa.get('recall'))}, f1 "
            f"{_fmt(nfa.get('f1'))}"
            + (
                f"; pixels: IoU {_fmt(pixel_nfa.get('IoU'))}, F1 {_fmt(pixel_nfa.get('F1'))}"
                if pixel_nfa
                else ""
            )
            + ")"
        )

    confusion = report.get("confusion")
    if confusion:
        lines += [""]
        if confusion.get("threshold") is None:
            lines.append(f"Confusion matrix: none ({confusion.get('note', 'no threshold')})")
        else:
            value = confusion.get("threshold_value")
            at = "" if value is None else f" = {value:.6g}"
            width = max(len(str(confusion.get(k))) for k in ("TP", "FN", "TN", "FP")) + 2
            width = max(width, 16)
            lines += [
                f"Confusion matrix at {confusion['threshold']}{at}",
                f"  {'':<16}{'pred normal':>{width}}{'pred anomalous':>{width}}",
                f"  {'true normal':<16}{confusion['TN']:>{width}}{confusion['FP']:>{width}}",
                f"  {'true anomalous':<16}{confusion['FN']:>{width}}{confusion['TP']:>{width}}",
                f"  accuracy {_fmt(confusion.get('accuracy'))}   precision "
                f"{_fmt(confusion.get('precision'))}   recall {_fmt(confusion.get('recall'))}",
            ]

    per_defect = report.get("per_defect")
    if per_defect:
        lines += ["", "Per-defect image AUROC (each defect against the normal images)"]
        width = max(len(name) for name in per_defect) + 2
        for name, entry in per_defect.items():
            lines.append(f"  {name:<{width}} {_fmt(entry.get('image_AUROC'))}   n={entry.get('n')}")

    timing = report.get("timing")
    if timing:
        lines += ["", "Timing"]
        for key, value in timing.items():
            lines.append(f"  {key:<20} {_fmt(value, 2)}")
    return "\n".join(lines) + "\n"


def write_report(
    out_dir: str | os.PathLike,
    report: dict,
    arrays: dict | None,
    max_maps_per_defect: int = 3,
    results_json: bool = True,
    max_worst: int = 6,
) -> None:
    """Write ``results.json``, ``results.txt`` and, given arrays, the plots and overlays.

    Args:
        out_dir: folder of one category's results (created if missing).
        report: the full results dict (``build_report`` output plus the caller's
            ``model``, ``config``, ``dataset``, ``category``, ``timing``, ``n_train``).
        arrays: ``AnomalyMetric.last_arrays`` (``scores``, ``labels``, ``img_paths``,
            ``defect_types``, ``maps``, ``masks``), or None to write only the text files.
        max_maps_per_defect: overlays per defect type in ``maps/``. Defaults to 3.
        results_json: also write ``results.json``; the run path writes it itself, last,
            so that a run killed earlier never looks finished. Defaults to True.
        max_worst: the highest-scored normal and the lowest-scored anomalous images drawn
            into ``worst/`` (:func:`worst_cases`), each. Defaults to 6.
    """
    # Imported here: adtool.visualization imports this package's functional module.
    from adtool.visualization.overlays import save_overlays, save_worst_cases
    from adtool.visualization.plots import plot_histogram, plot_pr, plot_roc

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if results_json:
        atomic_write_text(out / "results.json", format_results_json(report))
    atomic_write_text(out / "results.txt", format_results_txt(report))
    if arrays is None:
        return
    scores, labels = arrays["scores"], arrays["labels"]
    atomic_write_text(out / "scores.csv", format_scores_csv(arrays, report))
    plot_histogram(scores, labels, report.get("thresholds"), out / "histogram.png")
    plot_roc(scores, labels, out / "roc.png")
    plot_pr(scores, labels, out / "pr.png")
    pixel = report.get("pixel") or {}
    if arrays.get("maps") is not None:
        save_overlays(
            arrays, out, max_per_defect=max_maps_per_defect, threshold=pixel.get("threshold")
        )
    save_worst_cases(
        arrays, out, worst_cases(report, scores, labels, max_worst), pixel.get("threshold")
    )


def worst_cases(report: dict, scores: ArrayLike, labels: ArrayLike, k: int = 6) -> dict:
    """The test images a person should look at first, at the confusion threshold.

    ``false_positives``: the ``k`` highest-scored normal images, ``false_negatives``: the
    ``k`` lowest-scored anomalous ones (ties in test-set order). Each entry says whether
    it is an error at the threshold (``score >= value`` is anomalous), so the list also
    shows the correct images closest to the threshold when there are fewer than ``k``
    errors.

    Args:
        report: the results dict; its ``confusion`` block names the threshold.
        scores: (N,) image scores.
        labels: (N,) 0 normal / 1 anomalous.
        k: images per list. Defaults to 6.

    Returns:
        ``{"threshold", "threshold_value", "n_false_positives", "n_false_negatives",
        "false_positives": [{"index", "score", "error"}], "false_negatives": [...]}``;
        ``error`` and the counts are None without a threshold.
    """
    s = to_numpy(scores, np.float64).ravel()
    y = to_numpy(labels, np.float64).ravel() > 0
    confusion = report.get("confusion") or {}
    value = confusion.get("threshold_value")
    index = np.arange(s.size)
    # lexsort: last key first; ties keep the test-set order.
    normals = index[~y][np.lexsort((index[~y], -s[~y]))][:k]
    anomalous = index[y][np.lexsort((index[y], s[y]))][:k]

    def entry(i: int, error: bool | None) -> dict:
        score = float(s[i])
        return {"index": int(i), "score": score if np.isfinite(score) else None, "error": error}

    return {
        "threshold": confusion.get("threshold"),
        "threshold_value": value,
        "n_false_positives": None if value is None else int((s[~y] >= value).sum()),
        "n_false_negatives": None if value is None else int((s[y] < value).sum()),
        "false_positives": [
            entry(i, None if value is None else bool(s[i] >= value)) for i in normals
        ],
        "false_negatives": [
            entry(i, None if value is None else bool(s[i] < value)) for i in anomalous
        ],
    }


def format_scores_csv(arrays: dict, report: dict | None = None) -> str:
    """One row per test image: path, defect type, label, score and the predicted label
    at the confusion threshold (empty when there is none); with ``arrays['nfa_scores']``
    (U-Flow) also ``nfa_score`` and ``nfa_label`` (``nfa_score > 0``)."""
    threshold = ((report or {}).get("confusion") or {}).get("threshold_value")
    nfa = arrays.get("nfa_scores")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = ["img_path", "defect_type", "gt_label", "score", "pred_label"]
    writer.writerow(header + (["nfa_score", "nfa_label"] if nfa is not None else []))
    for i, (path, defect, label, score) in enumerate(
        zip(arrays["img_paths"], arrays["defect_types"], arrays["labels"], arrays["scores"])
    ):
        pred = "" if threshold is None else int(score >= threshold)
        row = [path, defect, int(label), f"{float(score):.9g}", pred]
        if nfa is not None:
            row += [f"{float(nfa[i]):.9g}", int(nfa[i] > 0)]
        writer.writerow(row)
    return buf.getvalue()


def load_results(path: str | os.PathLike) -> dict:
    """Read a ``results.json``, given the file or the folder that holds it.

    Raises:
        DataError: when the file does not exist.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise DataError(f"no results file at {path}; run tools/test.py (or train.py) to write it")
    with open(path, encoding="utf-8") as f:
        return json.load(f)
