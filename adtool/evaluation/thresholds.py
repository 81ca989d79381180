"""Decision thresholds on image scores, and the confusion matrix at a threshold.

Each threshold function returns one entry of the ``thresholds`` block of ``results.json``
(DESIGN.md, "Outputs: the results contract"). When a split lacks a class the entry keeps
its keys with ``None`` values and adds a ``"note"`` that says which class is missing,
instead of raising.

Conventions: label 1 is anomalous; an image is predicted anomalous when
``score >= threshold``. Among equally good candidates the lowest threshold wins.
"""

from __future__ import annotations

import numpy as np

from adtool.evaluation.functional import ArrayLike, image_auroc, roc_curve, to_numpy

NO_ANOMALOUS = "only normal images (label 0) in this split; no anomalous image to separate"
NO_NORMAL = "only anomalous images (label 1) in this split; no normal image to separate"
NO_IMAGES = "no images in this split"

# Confusion matrix threshold: the first of these whose value is known.
CONFUSION_ORDER = ("f1_percentile", "youden_j", "f1_uniform", "percentile_95")
#: Percentiles of the held-out normal scores reported for normal-only data.
NORMAL_ONLY_PERCENTILES = (95.0, 99.0, 99.9)
NORMAL_ONLY_NOTE = (
    "normal-only data: AUROC needs defect images, so image.AUROC is null; the thresholds "
    "are percentiles of held-out normal scores, each with the false-alarm rate it is meant "
    "to give; add defect images (defect/) for the full table"
)


def _split(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = to_numpy(scores, np.float64).ravel()
    y = to_numpy(labels, np.float64).ravel() > 0
    if s.size != y.size:
        raise ValueError(f"scores has {s.size} elements but labels has {y.size}")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or inf; check the model's output before thresholding")
    return s, y


def _missing_class_note(y: np.ndarray) -> str | None:
    if y.size == 0:
        return NO_IMAGES
    if not y.any():
        return NO_ANOMALOUS
    if y.all():
        return NO_NORMAL
    return None


def _f1_at(scores: np.ndarray, labels: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """F1 at every candidate threshold, counted by binary search on the sorted scores."""
    pos = np.sort(scores[labels])
    neg = np.sort(scores[~labels])
    tp = pos.size - np.searchsorted(pos, candidates, side="left")
    fp = neg.size - np.searchsorted(neg, candidates, side="left")
    fn = pos.size - tp
    return 2.0 * tp / np.maximum(2 * tp + fp + fn, 1)


def _best_f1(scores: ArrayLike, labels: ArrayLike, grid: str) -> dict:
    s, y = _split(scores, labels)
    note = _missing_class_note(y)
    if note is not None:
        return {"value": None, "f1": None, "note": note}
    if grid == "percentile":
        candidates = np.percentile(s, np.linspace(0.0, 100.0, 1001))
    else:
        candidates = np.linspace(s.min(), s.max(), 1001)
    f1 = _f1_at(s, y, candidates)
    best = int(np.argmax(f1))  # candidates ascend: the first maximum is the lowest threshold
    return {"value": float(candidates[best]), "f1": float(f1[best])}


def f1_percentile_threshold(scores: ArrayLike, labels: ArrayLike) -> dict:
    """Threshold with the best F1 among the score percentiles 0, 0.1, ..., 100.

    Percentiles use numpy's linear interpolation, so a threshold may fall between two
    scores.

    Args:
        scores: (N,) anomaly scores.
        labels: (N,) 0 normal / 1 anomalous.

    Returns:
        ``{"value": threshold, "f1": f1}``; both None plus ``"note"`` for one class.
    """
    return _best_f1(scores, labels, grid="percentile")


def f1_uniform_threshold(scores: ArrayLike, labels: ArrayLike) -> dict:
    """Threshold with the best F1 among 1001 evenly spaced values from min to max score.

    Returns:
        ``{"value": threshold, "f1": f1}``; both None plus ``"note"`` for one class.
    """
    return _best_f1(scores, labels, grid="uniform")


def youden_j_threshold(scores: ArrayLike, labels: ArrayLike) -> dict:
    """Threshold maximising Youden's J = TPR - FPR on the ROC curve (torchmetrics ``binary_roc``).

    The ROC thresholds are the distinct scores, so the value is an observed score.

    Returns:
        ``{"value", "sensitivity", "specificity"}`` (sensitivity = TPR, specificity =
        1 - FPR at that threshold); all None plus ``"note"`` for one class.
    """
    s, y = _split(scores, labels)
    note = _missing_class_note(y)
    if note is not None:
        return {"value": None, "sensitivity": None, "specificity": None, "note": note}
    fpr, tpr, thr = roc_curve(s, y)
    # Point 0 is torchmetrics' "predict nothing" point with an infinite threshold.
    # Thresholds descend, so the last maximum is the lowest threshold among ties.
    j = (tpr - fpr)[1:]
    best = j.size - int(np.argmax(j[::-1]))
    # Snap to the observed score: the curve's thresholds went through a [0, 1] rescale.
    value = s[np.argmin(np.abs(s - thr[best]))]
    return {
        "value": float(value),
        "sensitivity": float(tpr[best]),
        "specificity": float(1.0 - fpr[best]),
    }


def percentile_threshold(normal_scores: ArrayLike, q: float = 95) -> dict:
    """The ``q``-th percentile of the normal images' scores (numpy linear interpolation).

    Args:
        normal_scores: scores of normal images only.
        q: percentile in [0, 100]. Defaults to 95.

    Returns:
        ``{"value": threshold}``; None plus ``"note"`` when there is no normal score.
    """
    s = to_numpy(normal_scores, np.float64).ravel()
    if s.size == 0:
        return {"value": None, "note": "no normal images (label 0) in this split"}
    return {"value": float(np.percentile(s, q))}


def percentile_name(q: float) -> str:
    """``95 -> 'percentile_95'``, ``99.9 -> 'percentile_99_9'`` (a threshold's name)."""
    return "percentile_" + f"{q:g}".replace(".", "_")


def percentile_thresholds(
    normal_scores: ArrayLike, percentiles: tuple[float, ...] = NORMAL_ONLY_PERCENTILES
) -> dict:
    """Percentile thresholds of normal scores and the false-alarm rate of each.

    Threshold ``q`` is meant to flag ``1 - q/100`` of normal images
    (``expected_false_alarm_rate``); ``heldout_false_alarm_rate`` is the share of the
    given normal scores at or above it. With fewer than ``1 / (1 - q/100)`` normal scores
    the percentile is not resolved (it is an interpolation near the largest score) and a
    ``note`` says how many images it would need.

    Args:
        normal_scores: scores of held-out normal images.
        percentiles: the percentiles in [0, 100]. Defaults to (95, 99, 99.9).

    Returns:
        ``{percentile_name(q): {"value", "percentile", "expected_false_alarm_rate",
        "heldout_false_alarm_rate"[, "note"]}}``; values None plus ``"note"`` without
        normal scores.
    """
    s = to_numpy(normal_scores, np.float64).ravel()
    out = {}
    for q in percentiles:
        expected = round(1.0 - q / 100.0, 6)
        entry = percentile_threshold(s, q)
        entry.update(percentile=q, expected_false_alarm_rate=expected)
        if entry["value"] is None:
            entry["heldout_false_alarm_rate"] = None
        else:
            entry["heldout_false_alarm_rate"] = float(np.mean(s >= entry["value"]))
            needed = int(np.ceil(1.0 / expected)) if expected > 0 else None
            if needed is not None and s.size < needed:
                entry["note"] = (
                    f"{s.size} held-out normal images; at least {needed} are needed to resolve "
                    f"a {expected:g} false-alarm rate"
                )
        out[percentile_name(q)] = entry
    return out


def normal_only_report(
    normal_scores: ArrayLike, percentiles: tuple[float, ...] = NORMAL_ONLY_PERCENTILES
) -> dict:
    """What normal-only test data can tell: the held-out score distribution and thresholds.

    Returns:
        ``{"note", "n_normal", "score_distribution": {"min", "mean", "std", "median",
        "p95", "p99", "p99_9", "max"}, "percentile_thresholds": percentile_thresholds(...)}``
        (distribution values None without scores).
    """
    s = to_numpy(normal_scores, np.float64).ravel()
    keys = ("min", "mean", "std", "median", "p95", "p99", "p99_9", "max")
    if s.size:
        values = (
            s.min(),
            s.mean(),
            s.std(),
            *np.percentile(s, [50, 95, 99, 99.9]),
            s.max(),
        )
        dist = {k: float(v) for k, v in zip(keys, values)}
    else:
        dist = dict.fromkeys(keys)
    return {
        "note": NORMAL_ONLY_NOTE,
        "n_normal": int(s.size),
        "score_distribution": dist,
        "percentile_thresholds": percentile_thresholds(s, percentiles),
    }


def compute_thresholds(scores: ArrayLike, labels: ArrayLike) -> dict:
    """The four thresholds of the results contract.

    Returns:
        ``{"f1_percentile": ..., "f1_uniform": ..., "youden_j": ..., "percentile_95": ...}``.
    """
    s, y = _split(scores, labels)
    return {
        "f1_percentile": f1_percentile_threshold(s, y),
        "f1_uniform": f1_uniform_threshold(s, y),
        "youden_j": youden_j_threshold(s, y),
        "percentile_95": percentile_threshold(s[~y], 95),
    }


def confusion_at(scores: ArrayLike, labels: ArrayLike, threshold: float) -> dict:
    """Confusion matrix with ``score >= threshold`` predicted anomalous (positive).

    ``precision`` is 0 when nothing is predicted anomalous and ``recall`` is 0 when there is
    no anomalous image (both would be 0/0); ``accuracy`` is 0 for an empty split.

    Returns:
        ``{"TP", "FN", "TN", "FP"}`` (ints) and ``{"accuracy", "precision", "recall"}``.
    """
    s, y = _split(scores, labels)
    pred = s >= threshold
    tp = int(np.sum(pred & y))
    fp = int(np.sum(pred & ~y))
    fn = int(np.sum(~pred & y))
    tn = int(np.sum(~pred & ~y))
    return {
        "TP": tp,
        "FN": fn,
        "TN": tn,
        "FP": fp,
        "accuracy": (tp + tn) / s.size if s.size else 0.0,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
    }


def confusion_report(
    scores: ArrayLike,
    labels: ArrayLike,
    thresholds: dict,
    order: tuple[str, ...] = CONFUSION_ORDER,
) -> dict:
    """The ``confusion`` block: the matrix at the first threshold in ``order`` with a value.

    Returns:
        ``{"threshold": name, "threshold_value": value, **confusion_at(...)}``. When no
        threshold has a value, ``threshold`` and every count are None and ``"note"`` says
        why.
    """
    for name in order:
        value = (thresholds.get(name) or {}).get("value")
        if value is not None:
            return {
                "threshold": name,
                "threshold_value": value,
                **confusion_at(scores, labels, value),
            }
    empty = dict.fromkeys(("TP", "FN", "TN", "FP", "accuracy", "precision", "recall"))
    return {
        "threshold": None,
        "threshold_value": None,
        **empty,
        "note": "no threshold could be computed for this split",
    }


#: The ``nfa`` entry's note: what its rule acts on (not the image score).
NFA_NOTE = (
    "a-contrario threshold (U-Flow): an image is anomalous when some pixel has "
    "log10(NFA) < log10(epsilon), i.e. nfa_score > 0; it acts on the NFA map, not on the "
    "image score, so it has no score value"
)


def nfa_threshold(
    nfa_scores: ArrayLike,
    labels: ArrayLike,
    nfa_masks: ArrayLike | None = None,
    masks: ArrayLike | None = None,
) -> dict:
    """The ``nfa`` entry: the decisions of an automatic, unsupervised NFA threshold.

    Only models that give per-image ``nfa_score`` (``max`` over pixels of
    ``log10 epsilon - log10 NFA``) get this entry. An image is anomalous when its
    ``nfa_score > 0``; a pixel when its ``nfa_mask`` is set.

    Args:
        nfa_scores: (N,) per-image ``nfa_score``.
        labels: (N,) 0 normal / 1 anomalous.
        nfa_masks: (N, H, W) 0/1 detected pixels, or None.
        masks: (N, H, W) ground-truth masks, or None.

    Returns:
        ``{"rule", "note", "TP", "FN", "TN", "FP", "accuracy", "precision", "recall",
        "f1", "nfa_score_AUROC", "pixel"}`` (``nfa_score_AUROC``: how well the NFA ranks
        the images, None for one class); ``pixel`` holds
        ``{"precision", "recall", "F1", "IoU"}`` of the detected pixels against the
        masks over the whole test set (None without masks).
    """
    s = to_numpy(nfa_scores, np.float64).ravel()
    y = to_numpy(labels, np.float64).ravel() > 0
    pred = s > 0
    tp, fp = int(np.sum(pred & y)), int(np.sum(pred & ~y))
    fn, tn = int(np.sum(~pred & y)), int(np.sum(~pred & ~y))
    entry = {
        "rule": "anomalous where log10(NFA) < log10(epsilon); epsilon in model_info.nfa",
        "note": NFA_NOTE,
        "TP": tp,
        "FN": fn,
        "TN": tn,
        "FP": fp,
        "accuracy": (tp + tn) / s.size if s.size else 0.0,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
        "nfa_score_AUROC": image_auroc(s, y.astype(np.int64)),
        "pixel": None,
    }
    if nfa_masks is not None and masks is not None:
        detected = to_numpy(nfa_masks, np.float64) > 0
        truth = to_numpy(masks, np.float64) > 0
        ptp = int(np.sum(detected & truth))
        pfp = int(np.sum(detected & ~truth))
        pfn = int(np.sum(~detected & truth))
        entry["pixel"] = {
            "precision": ptp / (ptp + pfp) if ptp + pfp else 0.0,
            "recall": ptp / (ptp + pfn) if ptp + pfn else 0.0,
            "F1": 2 * ptp / (2 * ptp + pfp + pfn) if ptp + pfp + pfn else 0.0,
            "IoU": ptp / (ptp + pfp + pfn) if ptp + pfp + pfn else 0.0,
        }
    return entry
