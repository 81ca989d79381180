"""Histogram, ROC and PR figures: content checked through the figure before saving."""

import numpy as np
import pytest

from adtool.visualization import plots

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SCORES = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
LABELS = np.array([0, 0, 0, 1, 1, 1])


@pytest.fixture
def captured(monkeypatch):
    figures = []
    save = plots.save_figure

    def capture(fig, path):
        figures.append(fig)
        return save(fig, path)

    monkeypatch.setattr(plots, "save_figure", capture)
    return figures


def _legend(fig):
    return [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_histogram_draws_known_thresholds(tmp_path, captured):
    thresholds = {
        "f1_percentile": {"value": 0.5, "f1": 1.0},
        "f1_uniform": {"value": 0.55, "f1": 1.0},
        "youden_j": {"value": 0.7, "sensitivity": 1.0, "specificity": 1.0},
        "percentile_95": {"value": None, "note": "no normal images"},
    }
    path = plots.plot_histogram(SCORES, LABELS, thresholds, tmp_path / "histogram.png")
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert not list(tmp_path.glob("*.tmp"))
    assert _legend(captured[0]) == [
        "normal (n=3)", "anomalous (n=3)",
        "f1_percentile = 0.5", "f1_uniform = 0.55", "youden_j = 0.7",
    ]  # fmt: skip


def test_roc_and_pr_legends(tmp_path, captured):
    plots.plot_roc(SCORES, LABELS, tmp_path / "roc.png")
    plots.plot_pr(SCORES[::-1], LABELS, tmp_path / "pr.png")
    assert _legend(captured[0])[0] == "AUROC = 1.0000"
    assert _legend(captured[1])[0].startswith("AP = 0.")  # reversed scores: not perfect
    assert (tmp_path / "roc.png").read_bytes()[:8] == PNG_MAGIC
    assert (tmp_path / "pr.png").read_bytes()[:8] == PNG_MAGIC


def test_one_class_figures_say_so(tmp_path, captured):
    plots.plot_roc(SCORES, np.zeros(6), tmp_path / "roc.png")
    plots.plot_pr(SCORES, np.ones(6), tmp_path / "pr.png")
    plots.plot_histogram(SCORES, np.zeros(6), None, tmp_path / "histogram.png")
    texts = [t.get_text() for fig in captured[:2] for t in fig.axes[0].texts]
    assert "only normal images" in texts[0] and "only anomalous images" in texts[1]
    assert all((tmp_path / n).stat().st_size > 0 for n in ("roc.png", "pr.png", "histogram.png"))
