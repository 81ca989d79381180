"""report.html content: the values shown are the files' values, the worst cases are the
right images, the page is self-contained; built from hand-made run folders (no model)."""

import copy
import json
import re
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from adtool.errors import DataError
from adtool.evaluation.html_report import REPORT_NAME, report_kind, write_html_report
from adtool.evaluation.report import build_report, worst_cases, write_report


class Page(HTMLParser):
    """Tables (by class) as rows of cell texts, tiles of the worst-case grid, img sources."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.tiles: list[dict] = []
        self.srcs: list[str] = []
        self.hrefs: list[str] = []
        self.sections: list[str] = []
        self._table = None
        self._cell = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "data-section" in attrs:
            self.sections.append(attrs["data-section"])
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("class") or f"t{len(self.tables)}", [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "div" and "data-kind" in attrs:
            self.tiles.append(attrs)
        elif tag == "img":
            self.srcs.append(attrs.get("src", ""))
        elif tag in ("a", "link") and "href" in attrs:
            self.hrefs.append(attrs["href"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._table[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _arrays(tmp_path, n_good=6, seed=0, with_maps=True):
    """Scores with an overlap of the classes (so there are false positives and negatives)."""
    rng = np.random.default_rng(seed)
    defects = ["good"] * n_good + ["crack"] * 3 + ["hole"] * 3
    labels = np.array([d != "good" for d in defects], np.int64)
    n = len(defects)
    masks = np.zeros((n, 16, 16), np.uint8)
    masks[labels == 1, 4:9, 4:9] = 1
    maps = (0.6 * rng.random((n, 16, 16)) + 0.5 * masks).astype(np.float32)
    scores = maps.reshape(n, -1).max(1)
    paths = []
    for i, defect in enumerate(defects):
        path = tmp_path / "data" / defect / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return {
        "scores": scores,
        "labels": labels,
        "img_paths": paths,
        "defect_types": defects,
        "maps": maps if with_maps else None,
        "masks": masks if with_maps else None,
        "images": [rng.integers(0, 255, (16, 16, 3), dtype=np.uint8) for _ in range(n)],
    }


def _run_dir(tmp_path, name="bottle", **kwargs):
    arrays = _arrays(tmp_path / f"src_{name}", **kwargs)
    report = build_report(
        arrays["scores"], arrays["labels"], arrays["defect_types"], arrays["maps"],
        arrays["masks"],
    )  # fmt: skip
    results = {
        "model": "PatchCore", "config": "patchcore_r18_mvtec", "dataset": "mvtec",
        "category": name, **report,
        "timing": {"train_s": 1.5, "test_s": 2.0, "test_images_per_s": 4.0}, "n_train": 20,
    }  # fmt: skip
    out = tmp_path / "work" / name
    write_report(out, results, arrays)
    return out, results, arrays


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Run folders written once per module (the plots take seconds): with maps, without."""
    root = tmp_path_factory.mktemp("runs")
    return {
        "maps": _run_dir(root, "bottle", seed=1),
        "image_only": _run_dir(root, "cable", seed=2, with_maps=False),
    }


def _copy(built, kind, tmp_path, name=None):
    """A private copy of a built run folder (tests may rewrite its files)."""
    out, results, arrays = built[kind]
    target = tmp_path / "work" / (name or out.name)
    shutil.copytree(out, target)
    return target, copy.deepcopy(results), arrays


def test_category_page_shows_the_results_values(built, tmp_path):
    out, results, _ = _copy(built, "maps", tmp_path)
    path = write_html_report(out)
    assert path == out / REPORT_NAME and report_kind(out) == "category"
    page = Page(path.read_text())
    metrics = {(r[0], r[1].split(" ")[0]): r[2] for r in page.tables["metrics"][1:]}
    assert metrics[("image", "AUROC")] == f"{results['image']['AUROC']:.4f}"
    assert metrics[("image", "F1-max")] == f"{results['image']['F1_max']:.4f}"
    assert metrics[("pixel", "AUPRO")] == f"{results['pixel']['AUPRO']:.4f}"
    thresholds = {r[0].split(" ")[0]: r[1] for r in page.tables["t1"][1:]}
    for name in ("f1_percentile", "f1_uniform", "youden_j", "percentile_95"):
        assert thresholds[name] == f"{results['thresholds'][name]['value']:.6g}"
    cm = page.tables["cm"]
    c = results["confusion"]
    assert cm[1][1:] == [str(c["TN"]), str(c["FP"])] and cm[2][1:] == [str(c["FN"]), str(c["TP"])]
    per_defect = {r[0]: r[1:] for r in page.tables["per-defect"][1:]}
    assert per_defect == {
        k: [f"{v['image_AUROC']:.4f}", str(v["n"])] for k, v in results["per_defect"].items()
    }
    for section in ("metrics", "thresholds", "confusion", "histogram", "roc", "pr", "worst"):
        assert section in page.sections
    assert "per-defect" in page.sections


def test_worst_cases_are_the_highest_normals_and_lowest_anomalies(built, tmp_path):
    out, results, arrays = _copy(built, "maps", tmp_path)
    scores, labels = arrays["scores"], arrays["labels"]
    value = results["confusion"]["threshold_value"]
    normal_order = np.argsort(-scores[labels == 0], kind="stable")
    anomalous_order = np.argsort(scores[labels == 1], kind="stable")
    worst_fp = np.flatnonzero(labels == 0)[normal_order[0]]
    worst_fn = np.flatnonzero(labels == 1)[anomalous_order[0]]

    index = json.loads((out / "worst" / "worst.json").read_text())
    assert index["false_positives"][0]["img_path"] == arrays["img_paths"][worst_fp]
    assert index["false_negatives"][0]["img_path"] == arrays["img_paths"][worst_fn]
    fp_scores = [e["score"] for e in index["false_positives"]]
    assert (
        fp_scores
        == sorted(fp_scores, reverse=True)
        == pytest.approx(np.sort(scores[labels == 0])[::-1][:6])
    )
    assert index["n_false_positives"] == int((scores[labels == 0] >= value).sum())
    assert index["n_false_negatives"] == int((scores[labels == 1] < value).sum())
    assert [e["error"] for e in index["false_positives"]] == [s >= value for s in fp_scores]
    # Input + gap + overlay, at the map size.
    with Image.open(out / index["false_positives"][0]["file"]) as img:
        assert img.size == (16 + 2 + 16, 16)

    page = Page((write_html_report(out)).read_text())
    fps = [t for t in page.tiles if t["data-kind"] == "fp"]
    fns = [t for t in page.tiles if t["data-kind"] == "fn"]
    assert len(fps) == 6 and len(fns) == 6
    assert fps[0]["data-img-path"] == arrays["img_paths"][worst_fp]
    assert float(fps[0]["data-score"]) == pytest.approx(scores[worst_fp])
    assert fns[0]["data-img-path"] == arrays["img_paths"][worst_fn]
    assert ("err" in fps[0]["class"]) == bool(scores[worst_fp] >= value)


def test_worst_cases_ties_and_no_threshold():
    scores = np.array([0.5, 0.9, 0.9, 0.1, 0.2, 0.2])
    labels = np.array([0, 0, 0, 1, 1, 1])
    picked = worst_cases(
        {"confusion": {"threshold": "x", "threshold_value": 0.3}}, scores, labels, 2
    )
    assert [e["index"] for e in picked["false_positives"]] == [1, 2]  # ties: test-set order
    assert [e["index"] for e in picked["false_negatives"]] == [3, 4]
    assert picked["n_false_positives"] == 3 and picked["n_false_negatives"] == 3
    none = worst_cases({"confusion": {}}, scores, labels, 2)
    assert none["n_false_positives"] is None and none["false_positives"][0]["error"] is None


def test_image_only_method_shows_inputs_without_maps(built, tmp_path):
    out, results, _ = _copy(built, "image_only", tmp_path)
    assert results["pixel"] is None and not (out / "maps").exists()
    index = json.loads((out / "worst" / "worst.json").read_text())
    assert index["has_maps"] is False
    with Image.open(out / index["false_negatives"][0]["file"]) as img:
        assert img.size == (16, 16)  # the input alone
    text = write_html_report(out).read_text()
    assert "scores images only" in text and "no pixel metrics" in text
    assert len(Page(text).tiles) == 12


def test_page_is_self_contained_and_escaped(built, tmp_path):
    out, results, _ = _copy(built, "maps", tmp_path)
    results["config"] = "<script>alert(1)</script>"
    (out / "results.json").write_text(json.dumps(results))
    text = write_html_report(out).read_text()
    page = Page(text)
    assert page.srcs and all(s.startswith("data:image/png;base64,") for s in page.srcs)
    assert not [h for h in page.hrefs if re.match(r"[a-z]+://", h)]
    assert "<link" not in text and "<script>alert" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_older_run_without_worst_folder_uses_scores_csv(built, tmp_path):
    out, _, arrays = _copy(built, "maps", tmp_path)
    for p in (out / "worst").iterdir():
        p.unlink()
    (out / "worst").rmdir()
    page = Page(write_html_report(out).read_text())
    fps = [t for t in page.tiles if t["data-kind"] == "fp"]
    top = int(np.argmax(np.where(arrays["labels"] == 0, arrays["scores"], -np.inf)))
    assert fps[0]["data-img-path"] == arrays["img_paths"][top]
    assert all(s.startswith("data:image/png") for s in page.srcs)  # read from img_path


def test_work_dir_page_has_a_summary_and_each_category(built, tmp_path):
    _, ra, _ = _copy(built, "maps", tmp_path)
    _, rb, _ = _copy(built, "image_only", tmp_path)
    (tmp_path / "work" / "multi_class").mkdir()  # not a category: no results.json
    work = tmp_path / "work"
    assert report_kind(work) == "work_dir"
    page = Page(write_html_report(work).read_text())
    summary = page.tables["t0"]
    assert [r[0] for r in summary[1:]] == ["bottle", "cable", "mean"]
    assert summary[1][2] == f"{ra['image']['AUROC']:.4f}"
    assert summary[2][5] == "n/a"  # cable: image only
    mean = (ra["image"]["AUROC"] + rb["image"]["AUROC"]) / 2
    assert summary[3][2] == f"{mean:.4f}"
    assert page.sections.count("category") == 2 and page.sections.count("worst") == 2


def test_not_a_run_folder_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="no results.json, benchmark.json"):
        write_html_report(tmp_path)
    with pytest.raises(DataError, match="not a folder"):
        write_html_report(tmp_path / "missing")
    (tmp_path / "results.json").write_text(json.dumps({"task": "classification", "metrics": {}}))
    with pytest.raises(DataError, match="covers anomaly runs"):
        write_html_report(tmp_path)
    assert not (tmp_path / REPORT_NAME).exists()
