"""Thresholds and confusion counts on a hand-checked score set."""

import numpy as np
import pytest

from adtool.evaluation.thresholds import (
    compute_thresholds,
    confusion_at,
    confusion_report,
    f1_percentile_threshold,
    f1_uniform_threshold,
    percentile_threshold,
    youden_j_threshold,
)

# Normal 1, 2, 3, 8; anomalous 4, 5, 9, 10. Predicting score >= t for t in (3, 4] gives
# TP 4, FP 1 (the 8), FN 0: F1 = 8/9, the best; (8, 9] gives F1 4/6; (5, 8] gives 4/7.
SCORES = np.array([1.0, 2.0, 3.0, 8.0, 4.0, 5.0, 9.0, 10.0])
LABELS = np.array([0, 0, 0, 0, 1, 1, 1, 1])


def test_f1_percentile_threshold():
    result = f1_percentile_threshold(SCORES, LABELS)
    # Sorted scores, percentile p sits at index 7p/100: the first p with index > 2 is 28.6,
    # i.e. 3 + 0.002 * (4 - 3).
    assert result["value"] == pytest.approx(3.002)
    assert result["f1"] == pytest.approx(8 / 9)


def test_f1_uniform_threshold():
    result = f1_uniform_threshold(SCORES, LABELS)
    # Grid 1 + 0.009 k: the first point above 3 is k = 223.
    assert result["value"] == pytest.approx(3.007)
    assert result["f1"] == pytest.approx(8 / 9)


def test_youden_j_threshold():
    # At 4: TPR 1, FPR 1/4 (J .75); at 9: TPR .5, FPR 0 (J .5).
    result = youden_j_threshold(SCORES, LABELS)
    assert result == {"value": 4.0, "sensitivity": 1.0, "specificity": 0.75}


def test_youden_value_is_an_observed_score_for_large_scores():
    rng = np.random.default_rng(0)
    scores = 1e4 + rng.random(50)
    labels = (rng.random(50) < 0.4).astype(int)
    assert youden_j_threshold(scores, labels)["value"] in set(scores.tolist())


def test_percentile_threshold():
    # Index 0.95 * 3 = 2.85 between 3 and 8: 3 + 0.85 * 5.
    assert percentile_threshold(SCORES[LABELS == 0], q=95) == {"value": pytest.approx(7.25)}
    assert percentile_threshold(SCORES[LABELS == 0], q=50) == {"value": pytest.approx(2.5)}


def test_confusion_at_counts_ties_as_anomalous():
    result = confusion_at(SCORES, LABELS, 4.0)
    assert result == {
        "TP": 4,
        "FN": 0,
        "TN": 3,
        "FP": 1,
        "accuracy": pytest.approx(7 / 8),
        "precision": pytest.approx(0.8),
        "recall": pytest.approx(1.0),
    }
    strict = confusion_at(SCORES, LABELS, 9.5)
    assert (strict["TP"], strict["FN"], strict["TN"], strict["FP"]) == (1, 3, 4, 0)


def test_confusion_precision_is_zero_when_nothing_predicted():
    result = confusion_at(SCORES, LABELS, 100.0)
    assert (result["TP"], result["FP"], result["precision"], result["recall"]) == (0, 0, 0.0, 0.0)
    assert result["accuracy"] == pytest.approx(0.5)


def test_compute_thresholds_shape():
    result = compute_thresholds(SCORES, LABELS)
    assert list(result) == ["f1_percentile", "f1_uniform", "youden_j", "percentile_95"]
    assert set(result["f1_percentile"]) == {"value", "f1"}
    assert set(result["f1_uniform"]) == {"value", "f1"}
    assert set(result["youden_j"]) == {"value", "sensitivity", "specificity"}
    assert result["percentile_95"] == {"value": pytest.approx(7.25)}
    report = confusion_report(SCORES, LABELS, result)
    assert report["threshold"] == "f1_percentile"
    assert report["threshold_value"] == pytest.approx(3.002)
    assert (report["TP"], report["FP"]) == (4, 1)


def test_only_normal_images():
    scores, labels = np.array([0.1, 0.2, 0.3, 0.4]), np.zeros(4, int)
    result = compute_thresholds(scores, labels)
    for name in ("f1_percentile", "f1_uniform", "youden_j"):
        assert result[name]["value"] is None
        assert "only normal images" in result[name]["note"]
    assert result["youden_j"]["sensitivity"] is None
    assert result["percentile_95"]["value"] == pytest.approx(0.385)
    report = confusion_report(scores, labels, result)
    assert report["threshold"] == "percentile_95"
    assert (report["TN"], report["FP"], report["TP"]) == (3, 1, 0)


def test_only_anomalous_images():
    scores, labels = np.array([0.1, 0.2]), np.ones(2, int)
    result = compute_thresholds(scores, labels)
    assert "only anomalous images" in result["f1_uniform"]["note"]
    assert result["percentile_95"]["value"] is None
    assert "no normal images" in result["percentile_95"]["note"]
    report = confusion_report(scores, labels, result)
    assert report["threshold"] is None and report["TP"] is None
    assert "note" in report


def test_empty_split_does_not_crash():
    result = compute_thresholds(np.array([]), np.array([]))
    assert all(entry["value"] is None for entry in result.values())


def test_percentile_thresholds_and_false_alarm_rates():
    from adtool.evaluation.thresholds import percentile_thresholds

    normal = np.arange(1000, dtype=np.float64)  # 0..999
    out = percentile_thresholds(normal)
    assert list(out) == ["percentile_95", "percentile_99", "percentile_99_9"]
    assert out["percentile_95"]["value"] == pytest.approx(949.05)
    assert out["percentile_99"]["value"] == pytest.approx(989.01)
    assert out["percentile_99_9"]["value"] == pytest.approx(998.001)
    assert [e["expected_false_alarm_rate"] for e in out.values()] == [0.05, 0.01, 0.001]
    # Scores >= 949.05 are 950..999: 50 of 1000.
    assert out["percentile_95"]["heldout_false_alarm_rate"] == pytest.approx(0.05)
    assert out["percentile_99_9"]["heldout_false_alarm_rate"] == pytest.approx(0.001)
    assert all("note" not in e for e in out.values())


def test_percentile_thresholds_say_when_too_few_normals():
    from adtool.evaluation.thresholds import percentile_thresholds

    out = percentile_thresholds(np.linspace(0, 1, 50))
    assert "note" not in out["percentile_95"]  # 50 >= 20
    assert "at least 100" in out["percentile_99"]["note"]
    assert "at least 1000" in out["percentile_99_9"]["note"]
    empty = percentile_thresholds(np.array([]))
    assert empty["percentile_95"]["value"] is None
    assert empty["percentile_95"]["heldout_false_alarm_rate"] is None


def test_normal_only_report_in_build_report():
    from adtool.evaluation.report import build_report, format_results_txt

    scores = np.linspace(0.0, 1.0, 21)
    report = build_report(scores, np.zeros(21), ["good"] * 21)
    assert report["image"]["AUROC"] is None
    assert "normal-only" in report["image"]["note"]
    block = report["normal_only"]
    assert block["n_normal"] == 21
    assert block["score_distribution"]["max"] == 1.0
    assert block["score_distribution"]["median"] == pytest.approx(0.5)
    assert report["thresholds"]["percentile_99"]["value"] == pytest.approx(0.99)
    assert report["thresholds"]["percentile_95"]["value"] == pytest.approx(0.95)
    assert report["thresholds"]["f1_percentile"]["value"] is None  # one class: no crash
    assert report["confusion"]["threshold"] == "percentile_95"
    assert report["confusion"]["FP"] == 2  # 0.95 and 1.0
    text = format_results_txt(report)
    assert "Normal-only data: 21 held-out normal images" in text
    # Data with defects: no normal-only block, the four thresholds only.
    both = build_report(scores, (scores > 0.5).astype(int), ["x"] * 21)
    assert "normal_only" not in both and "percentile_99" not in both["thresholds"]
