"""report.html written by real runs (train, benchmark) and rendered in headless Chromium.

Two tiny configs (PatchCore with maps, DFKDE image-only) x two categories, run once per
module; the benchmark over them only tabulates (every pair is finished). Chromium loads
each page and the page's own check script reports script errors, images that did not
decode and the sections present (``data-report-check`` on ``<html>``). Without Chromium
the browser tests skip, except under ``CI`` (set in CI and by .ci/run), where they fail.
"""

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adtool.apis import run
from adtool.apis.benchmark import run_benchmark
from adtool.apis.core import load_config, wants_report
from adtool.cli import app, expand_cfg_options
from adtool.evaluation.html_report import REPORT_NAME, _page

REPO = Path(__file__).resolve().parents[2]
PATCHCORE = REPO / "configs" / "patchcore" / "patchcore_effnetlite0_sample.py"
DFKDE = REPO / "configs" / "dfkde" / "dfkde_r18_mvtec.py"
TINY = [
    "train_dataloader.dataset.pipeline.1.size=64",
    "test_dataloader.dataset.pipeline.2.size=64",
]
CATEGORIES = "tiles,disk"
CATEGORY_SECTIONS = {"metrics", "thresholds", "confusion", "histogram", "roc", "pr", "worst"}
CATEGORY_SECTIONS |= {"fp", "fn", "per-defect"}


@pytest.fixture(scope="module")
def bench(tiny_data, tmp_path_factory):
    configs = tmp_path_factory.mktemp("report_configs")
    pc = configs / "pc_tiny.py"
    pc.write_text(f'_base_ = "{PATCHCORE.as_posix()}"\nmodel = dict(backbone=dict(weights=None))\n')
    kde = configs / "kde_tiny.py"
    kde.write_text(
        f'_base_ = "{DFKDE.as_posix()}"\n'
        "model = dict(backbone=dict(weights=None), head=dict(n_components=4))\n"
    )
    work = tmp_path_factory.mktemp("report_bench")
    for config in (pc, kde):
        run(
            config,
            data_root=tiny_data,
            dataset="sample",
            category=CATEGORIES,
            work_dir=work / config.stem,
            cfg_options=TINY,
        )
    summary = run_benchmark(
        [pc, kde],
        work,
        data_root=tiny_data,
        dataset="sample",
        categories=CATEGORIES,
        cfg_options=TINY,
        live=False,
    )
    assert summary.ran == 0 and summary.skipped == 4  # the runs above are its pairs
    return work, pc


class _Check(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.result = None

    def handle_starttag(self, tag, attrs):
        if tag == "html":
            value = dict(attrs).get("data-report-check")
            self.result = None if value is None else json.loads(value)


def render(page: Path, tmp_path: Path) -> dict:
    """Load ``page`` in headless Chromium; the page's check result (errors, images...)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        message = "chromium not on PATH (apt-get install -y chromium; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must render the HTML report")
        pytest.skip(message)
    profile = tmp_path / "chromium-profile"
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=30000",
            "--dump-dom",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    parser = _Check()
    parser.feed(done.stdout)
    assert parser.result is not None, f"the page's load handler never ran: {done.stderr[-1000:]}"
    return parser.result


def assert_clean(check: dict, n_images: int) -> None:
    assert check["errors"] == []
    assert check["broken"] == []
    assert check["images"] == n_images


def n_images(folder: Path) -> int:
    """Histogram, ROC, PR and the worst cases of one category."""
    index = json.loads((folder / "worst" / "worst.json").read_text())
    return 3 + len(index["false_positives"]) + len(index["false_negatives"])


def test_runs_write_category_and_work_dir_reports(bench):
    work, _ = bench
    for config in ("pc_tiny", "kde_tiny"):
        assert (work / config / REPORT_NAME).is_file()
        for category in CATEGORIES.split(","):
            folder = work / config / category
            assert (folder / REPORT_NAME).is_file()
            index = json.loads((folder / "worst" / "worst.json").read_text())
            assert index["has_maps"] is (config == "pc_tiny")
            normals = [
                (float(r.split(",")[3]), r.split(",")[0])
                for r in (folder / "scores.csv").read_text().splitlines()[1:]
                if r.split(",")[2] == "0"
            ]
            assert index["false_positives"][0]["img_path"] == max(normals)[1]
    text = (work / REPORT_NAME).read_text()
    assert "pc_tiny" in text and "kde_tiny" in text and 'href="pc_tiny/tiles/report.html"' in text
    assert not list(work.glob("**/*.tmp"))


def test_browser_renders_a_category_report(bench, tmp_path):
    work, _ = bench
    check = render(work / "pc_tiny" / "tiles" / REPORT_NAME, tmp_path)
    assert_clean(check, n_images(work / "pc_tiny" / "tiles"))  # 3 plots, 3 FP + 6 FN
    assert CATEGORY_SECTIONS <= set(check["sections"])


def test_browser_renders_a_work_dir_report(bench, tmp_path):
    work, _ = bench
    check = render(work / "kde_tiny" / REPORT_NAME, tmp_path)
    assert_clean(check, sum(n_images(work / "kde_tiny" / c) for c in CATEGORIES.split(",")))
    assert check["sections"].count("category") == 2 and "summary" in check["sections"]
    assert check["sections"].count("worst") == 2


def test_browser_renders_a_benchmark_report(bench, tmp_path):
    work, _ = bench
    check = render(work / REPORT_NAME, tmp_path)
    assert_clean(check, 1)  # the heatmap
    assert {"heatmap", "winners", "pairs", "pair-summaries"} <= set(check["sections"])
    # The benchmark's best configs are the page's winners.
    data = json.loads((work / "benchmark.json").read_text())
    text = (work / REPORT_NAME).read_text()
    for row in data["pairs"]:
        assert f'data-pair="{row["config"]}/{row["category"]}"' in text
        if row["best"]:
            assert f'href="{row["config"]}/{row["category"]}/report.html"' in text


def test_browser_check_sees_a_broken_image_and_a_script_error(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text(
        _page(
            "bad",
            "",
            '<img src="data:image/png;base64,AAAA" alt="broken one">'
            "<script>no_such_function()</script>",
        )
    )
    check = render(page, tmp_path)
    assert check["broken"] == ["broken one"]
    assert any("no_such_function" in e for e in check["errors"])


def test_cli_report_and_no_report(bench, tiny_data, tmp_path):
    work, pc = bench
    folder = work / "pc_tiny" / "disk"
    (folder / REPORT_NAME).unlink()
    result = CliRunner().invoke(app, ["report", str(folder)])
    assert result.exit_code == 0 and (folder / REPORT_NAME).is_file(), result.output
    bad = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert bad.exit_code == 2 and "holds no results.json" in bad.output
    checkpoint = (folder / "last_checkpoint").read_text().strip()
    out = tmp_path / "tested"
    args = ["test", str(pc), checkpoint, "--data-root", str(tiny_data), "--category", "disk"]
    args += ["--work-dir", str(out), "--no-report", "--cfg-options", *TINY]
    result = CliRunner().invoke(app, expand_cfg_options(args))
    assert result.exit_code == 0, result.output
    assert (out / "disk" / "results.json").is_file() and not list(out.glob("**/report.html"))


def test_html_report_config_key():
    cfg = load_config(PATCHCORE, ["html_report=False"])
    assert wants_report(cfg, None) is False and wants_report(cfg, True) is True
    assert wants_report(load_config(PATCHCORE), None) is True
