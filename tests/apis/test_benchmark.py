"""tools/benchmark.py: tables from results.json, resumable, isolated failures, --force."""

import csv
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import adtool.apis.benchmark as bench
from adtool.apis.benchmark import (
    mark_best,
    mean_rows,
    model_configs,
    run_benchmark,
)
from adtool.apis.config_index import default_config, resolve_config
from adtool.cli import app, expand_cfg_options
from adtool.errors import ConfigError
from adtool.evaluation import write_report

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "configs" / "patchcore" / "patchcore_effnetlite0_sample.py"
# 64 px images, as the tiny() helper of test_integration.py does (same pipeline indices in
# both test configs, which inherit patchcore_effnetlite0_sample).
TINY = [
    "train_dataloader.dataset.pipeline.1.size=64",
    "test_dataloader.dataset.pipeline.2.size=64",
]
TABLES = ("benchmark.md", "benchmark.csv", "benchmark.json", "benchmark_heatmap.png")


def write_config(folder: Path, name: str, body: str = "") -> Path:
    """A config inheriting the sample PatchCore with random weights, plus ``body``."""
    path = folder / f"{name}.py"
    path.write_text(
        f'_base_ = "{BASE.as_posix()}"\nmodel = dict(backbone=dict(weights=None){body})\n'
    )
    return path


@pytest.fixture(scope="module")
def two_configs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("configs")
    # Two coreset sizes give two different models.
    small = write_config(folder, "pc_small", ", head=dict(coreset_ratio=0.02)")
    large = write_config(folder, "pc_large", ", head=dict(coreset_ratio=0.5)")
    return [small, large]


@pytest.fixture(scope="module")
def real_bench(two_configs, tiny_data, tmp_path_factory):
    """2 configs x 2 categories through the real run_category, once."""
    work = tmp_path_factory.mktemp("bench")
    summary = run_benchmark(
        two_configs, work, data_root=tiny_data, cfg_options=TINY, threads=1, live=False
    )
    return work, summary


def fake_results(cfg, category: str, auroc: float) -> dict:
    return {
        "model": "PatchCore",
        "config": Path(cfg.filename).stem,
        "dataset": "sample",
        "category": category,
        "image": {"AUROC": auroc, "AUPR": 0.5, "F1_max": 0.6},
        "pixel": {"AUROC": 0.7, "AUPRO": 0.4},
        "thresholds": {},
        "confusion": {},
        "per_defect": {},
        "timing": {"train_s": 1.0, "test_s": 2.0, "test_images_per_s": 4.5},
        "n_train": 6,
        "n_test": 9,
    }


class FakeRun:
    """Stands in for run_category: writes a results.json fast and counts the calls."""

    def __init__(self, fail=None, interrupt_on=None):
        self.calls = []
        self.fail = fail or {}
        self.interrupt_on = interrupt_on

    def __call__(self, cfg, category, work_dir, **kwargs):
        stem = Path(cfg.filename).stem
        self.calls.append((stem, category))
        if self.interrupt_on == len(self.calls):
            raise KeyboardInterrupt
        if (stem, category) in self.fail:
            raise self.fail[(stem, category)]
        auroc = (0.9 if stem == "pc_large" else 0.8) + (0.05 if category == "disk" else 0.0)
        write_report(work_dir, fake_results(cfg, category, auroc), None)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_tables_match_results_files(real_bench, two_configs):
    work, summary = real_bench
    for name in TABLES:
        assert (work / name).is_file(), name
    assert not list(work.glob("**/*.tmp"))
    assert summary.ran == 4 and not summary.failed
    rows = read_csv(work / "benchmark.csv")
    pairs = [r for r in rows if r["category"] != "mean"]
    means = [r for r in rows if r["category"] == "mean"]
    assert [(r["config"], r["category"]) for r in pairs] == [
        ("pc_small", "disk"),
        ("pc_small", "tiles"),
        ("pc_large", "disk"),
        ("pc_large", "tiles"),
    ]
    results = {}
    for r in pairs:
        saved = json.loads((work / r["config"] / r["category"] / "results.json").read_text())
        results[(r["config"], r["category"])] = saved
        assert r["status"] == "ok" and r["model"] == "PatchCore"
        assert float(r["image_AUROC"]) == saved["image"]["AUROC"]
        assert float(r["image_AUPR"]) == saved["image"]["AUPR"]
        assert float(r["image_F1_max"]) == saved["image"]["F1_max"]
        assert float(r["pixel_AUROC"]) == saved["pixel"]["AUROC"]
        assert float(r["pixel_AUPRO"]) == saved["pixel"]["AUPRO"]
        assert float(r["train_s"]) == saved["timing"]["train_s"] > 0
        assert float(r["images_per_s"]) == saved["timing"]["test_images_per_s"]
    assert [m["config"] for m in means] == ["pc_small", "pc_large"]
    for m in means:
        own = [results[(m["config"], c)] for c in ("disk", "tiles")]
        expected = sum(s["image"]["AUROC"] for s in own) / 2
        assert float(m["image_AUROC"]) == pytest.approx(expected, abs=1e-12)
        expected = sum(s["pixel"]["AUPRO"] for s in own) / 2
        assert float(m["pixel_AUPRO"]) == pytest.approx(expected, abs=1e-12)

    def rank(saved):
        return (saved["image"]["AUROC"], saved["pixel"]["AUPRO"], saved["pixel"]["AUROC"])

    for category in ("disk", "tiles"):
        top = max(rank(results[(c, category)]) for c in ("pc_small", "pc_large"))
        for r in pairs:
            if r["category"] == category:
                assert r["best"] == str(int(rank(results[(r["config"], category)]) == top))
    assert sum(int(r["best"]) for r in means) >= 1
    # The JSON holds the same rows; the Markdown bolds the best of each category.
    payload = json.loads((work / "benchmark.json").read_text())
    assert len(payload["pairs"]) == 4 and len(payload["means"]) == 2
    assert [p["best"] for p in payload["pairs"]] == [r["best"] == "1" for r in pairs]
    md = (work / "benchmark.md").read_text()
    for r in pairs:
        value = f"{float(r['image_AUROC']):.4f}"
        cell = f"**{value}**" if r["best"] == "1" else value
        assert cell in md
    assert "adtool benchmark" not in md  # no command given through the API
    assert "4 pairs: 4 ok, 0 failed, 0 pending" in md


def test_rerun_skips_finished_pairs(real_bench, two_configs, tiny_data, monkeypatch):
    work, first = real_bench
    fake = FakeRun()
    monkeypatch.setattr(bench, "run_category", fake)
    summary = run_benchmark(two_configs, work, data_root=tiny_data, cfg_options=TINY, live=False)
    assert fake.calls == [] and summary.ran == 0 and summary.skipped == 4
    assert summary.pairs == first.pairs and summary.means == first.means


def test_force_reruns_everything(real_bench, two_configs, tiny_data, tmp_path, monkeypatch):
    work = tmp_path / "bench"
    shutil.copytree(real_bench[0], work)
    fake = FakeRun()
    monkeypatch.setattr(bench, "run_category", fake)
    summary = run_benchmark(
        two_configs, work, data_root=tiny_data, cfg_options=TINY, force=True, live=False
    )
    assert len(fake.calls) == 4 and summary.ran == 4
    # The rows now come from the new (fake) results files.
    assert all(r["image_AUPR"] == 0.5 for r in summary.pairs)


def test_killed_run_resumes_without_duplicates(two_configs, tiny_data, tmp_path, monkeypatch):
    killer = FakeRun(interrupt_on=2)
    monkeypatch.setattr(bench, "run_category", killer)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(two_configs, tmp_path, data_root=tiny_data, cfg_options=TINY, live=False)
    rows = read_csv(tmp_path / "benchmark.csv")
    assert [r["status"] for r in rows if r["category"] != "mean"] == [
        "ok",
        "pending",
        "pending",
        "pending",
    ]
    assert not list(tmp_path.glob("**/*.tmp"))
    resumed = FakeRun()
    monkeypatch.setattr(bench, "run_category", resumed)
    summary = run_benchmark(
        two_configs, tmp_path, data_root=tiny_data, cfg_options=TINY, live=False
    )
    assert resumed.calls == [("pc_small", "tiles"), ("pc_large", "disk"), ("pc_large", "tiles")]
    rows = read_csv(tmp_path / "benchmark.csv")
    keys = [(r["config"], r["category"]) for r in rows]
    assert len(keys) == len(set(keys)) == 6
    assert all(r["status"] == "ok" for r in rows)
    assert summary.skipped == 1


def test_failing_pair_is_isolated_and_retried(two_configs, tiny_data, tmp_path, monkeypatch):
    fake = FakeRun(fail={("pc_small", "tiles"): ValueError("model bug\nsecond line")})
    monkeypatch.setattr(bench, "run_category", fake)
    summary = run_benchmark(
        two_configs, tmp_path, data_root=tiny_data, cfg_options=TINY, live=False
    )
    assert len(fake.calls) == 4
    failed = [r for r in summary.pairs if r["status"] == "failed"]
    assert [(r["config"], r["category"], r["reason"]) for r in failed] == [
        ("pc_small", "tiles", "ValueError: model bug")
    ]
    error = (tmp_path / "pc_small" / "tiles" / "error.txt").read_text()
    assert error.startswith("ValueError: model bug\n") and "Traceback" in error
    small_mean = next(m for m in summary.means if m["config"] == "pc_small")
    assert small_mean["status"] == "1/2 ok"
    ok_small = next(r for r in summary.pairs if r["config"] == "pc_small" and r["status"] == "ok")
    assert small_mean["image_AUROC"] == ok_small["image_AUROC"]
    md = (tmp_path / "benchmark.md").read_text()
    assert "## Failures" in md and "ValueError: model bug" in md
    # A rerun retries only the failed pair; once it succeeds its error.txt is gone.
    retry = FakeRun()
    monkeypatch.setattr(bench, "run_category", retry)
    summary = run_benchmark(
        two_configs, tmp_path, data_root=tiny_data, cfg_options=TINY, live=False
    )
    assert retry.calls == [("pc_small", "tiles")] and not summary.failed
    assert not (tmp_path / "pc_small" / "tiles" / "error.txt").exists()


def test_cli_reports_real_config_error_and_exits_nonzero(
    two_configs, tiny_data, tmp_path, monkeypatch
):
    """A config with a key typo fails at build time; the other config's pairs still run."""
    bad = write_config(tmp_path, "pc_typo", ", neck=dict(kernel_sise=3)")
    real = bench.run_category
    fake = FakeRun()

    def run(cfg, category, work_dir, **kwargs):
        if Path(cfg.filename).stem == "pc_typo":
            return real(cfg, category, work_dir, **kwargs)
        return fake(cfg, category, work_dir, **kwargs)

    monkeypatch.setattr(bench, "run_category", run)
    args = ["benchmark", "--configs", str(two_configs[0]), str(bad)]
    args += ["--data-root", str(tiny_data), "--work-dir", str(tmp_path / "w")]
    args += ["--cfg-options", *TINY, "--threads", "1"]
    result = CliRunner().invoke(app, expand_cfg_options(args))
    assert result.exit_code == 1, result.output
    assert "2 failed" in result.output and "FAILED" in result.output
    rows = read_csv(tmp_path / "w" / "benchmark.csv")
    status = {(r["config"], r["category"]): (r["status"], r["reason"]) for r in rows}
    assert status[("pc_small", "disk")][0] == status[("pc_small", "tiles")][0] == "ok"
    assert status[("pc_typo", "disk")][0] == "failed"
    reason = status[("pc_typo", "tiles")][1]
    assert reason.startswith("ConfigError:") and "kernel_sise" in reason and "\n" not in reason
    md = (tmp_path / "w" / "benchmark.md").read_text()
    assert "adtool benchmark --configs" in md  # the command is quoted


def test_cli_user_mistake_is_one_line(tmp_path):
    args = ["benchmark", "--configs", str(tmp_path / "missing.py"), "--work-dir", str(tmp_path)]
    result = CliRunner().invoke(app, expand_cfg_options(args))
    assert result.exit_code == 2
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "missing.py" in lines[0] and "Traceback" not in result.output


def test_same_stem_twice_is_refused(two_configs, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    twin = write_config(other, "pc_small")
    with pytest.raises(ConfigError, match="given twice"):
        run_benchmark([two_configs[0], twin], tmp_path / "w", live=False)


def test_best_ties_and_means():
    def row(config, category, auroc, aupro, status="ok"):
        return {
            **dict.fromkeys(bench.COLUMNS),
            "config": config,
            "model": "M",
            "category": category,
            "image_AUROC": auroc,
            "pixel_AUPRO": aupro,
            "status": status,
            "best": False,
        }

    rows = [
        row("a", "x", 1.0, 0.8),
        row("b", "x", 1.0, 0.9),  # same AUROC, better AUPRO
        row("c", "x", 0.9, 0.99),
        row("a", "y", 0.7, None),
        row("b", "y", 0.7, None),  # full tie: both best
        row("c", "y", None, None, status="failed"),
    ]
    means = mean_rows(rows)
    mark_best(rows, means)
    assert [r["best"] for r in rows] == [False, True, False, True, True, False]
    by = {m["config"]: m for m in means}
    assert by["b"]["image_AUROC"] == pytest.approx(0.85)
    assert by["c"]["image_AUROC"] == 0.9 and by["c"]["status"] == "1/2 ok"
    # Only configs that finished every category compete for the best mean.
    assert by["b"]["best"] and not by["a"]["best"] and not by["c"]["best"]


def test_models_resolve_to_default_configs(tmp_path, monkeypatch):
    assert [p.stem for p in model_configs("patchcore")] == ["patchcore_wrn50_mvtec"]
    assert resolve_config("patchcore").stem == "patchcore_wrn50_mvtec"
    # A model folder without a marked default: its single config, or an error naming them.
    for model, names in {
        "solo": ["solo_r18_mvtec"],
        "amb": ["amb_r18_mvtec", "amb_wrn50_mvtec"],
    }.items():
        (tmp_path / model).mkdir()
        for name in names:
            (tmp_path / model / f"{name}.py").write_text("x = 1\n")
    monkeypatch.setenv("ADTOOL_CONFIG_DIR", str(tmp_path))
    assert default_config("solo").stem == "solo_r18_mvtec"
    assert [p.stem for p in model_configs("solo")] == ["solo_r18_mvtec"]
    with pytest.raises(ConfigError, match="amb_r18_mvtec, amb_wrn50_mvtec"):
        resolve_config("amb")
    with pytest.raises(ConfigError, match="no config named 'nothing'"):
        resolve_config("nothing")


def test_expand_configs_flag():
    argv = ["benchmark", "--configs", "a.py", "b.py", "--categories", "x", "--cfg-options", "k=1"]
    assert expand_cfg_options(argv) == [
        "benchmark",
        "--configs",
        "a.py",
        "--configs",
        "b.py",
        "--categories",
        "x",
        "--cfg-options",
        "k=1",
    ]


def test_pair_killed_before_its_last_file_is_redone(two_configs, tiny_data, tmp_path, monkeypatch):
    """A kill after some of a pair's files are written (here: just after thresholds.json,
    the step before results.json) must not make the pair look finished: the rerun redoes
    it. A stale results.json of an earlier run (``--force``) is covered by the marker."""
    import os

    real_replace = os.replace

    def replace_then_die(src, dst, *args, **kwargs):
        real_replace(src, dst, *args, **kwargs)
        if Path(dst).name == "thresholds.json":
            raise KeyboardInterrupt  # the kill, just after the thresholds are complete

    config = two_configs[:1]
    monkeypatch.setattr(os, "replace", replace_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(
            config, tmp_path, data_root=tiny_data, categories="disk", cfg_options=TINY, live=False
        )
    pair_dir = tmp_path / "pc_small" / "disk"
    assert (pair_dir / "thresholds.json").is_file()
    assert not (pair_dir / "results.json").exists()  # written last
    assert (pair_dir / bench.INCOMPLETE_FILE).is_file()
    assert bench.load_finished(pair_dir, "disk") is None
    # A results.json left by an earlier run does not make the interrupted pair finished.
    (pair_dir / "results.json").write_text(json.dumps({k: None for k in bench.RESULT_KEYS}))
    assert bench.load_finished(pair_dir, "disk") is None

    monkeypatch.setattr(os, "replace", real_replace)
    summary = run_benchmark(
        config, tmp_path, data_root=tiny_data, categories="disk", cfg_options=TINY, live=False
    )
    assert summary.ran == 1 and summary.skipped == 0
    assert [r["status"] for r in summary.pairs] == ["ok"]
    assert set(bench.RESULT_KEYS) <= set(json.loads((pair_dir / "results.json").read_text()))
    assert not (pair_dir / bench.INCOMPLETE_FILE).exists()


def test_interrupted_pair_is_pending_and_old_folders_without_marker_count(
    real_bench, two_configs, tiny_data, tmp_path, monkeypatch
):
    work = tmp_path / "bench"
    shutil.copytree(real_bench[0], work)
    # Folders written before the marker existed hold only results.json: finished.
    assert not list(work.glob(f"**/{bench.INCOMPLETE_FILE}"))
    (work / "pc_large" / "tiles" / bench.INCOMPLETE_FILE).write_text("started\n")
    fake = FakeRun(interrupt_on=1)
    monkeypatch.setattr(bench, "run_category", fake)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(two_configs, work, data_root=tiny_data, cfg_options=TINY, live=False)
    assert fake.calls == [("pc_large", "tiles")]
    row = next(r for r in read_csv(work / "benchmark.csv") if r["config"] == "pc_large")
    assert row["category"] == "disk" and row["status"] == "ok"
    rows = {(r["config"], r["category"]): r for r in read_csv(work / "benchmark.csv")}
    assert rows[("pc_large", "tiles")]["status"] == "pending"
    assert "interrupted" in rows[("pc_large", "tiles")]["reason"]


def test_category_that_is_not_a_folder_name_is_refused(two_configs, tmp_path):
    with pytest.raises(ConfigError, match="not a folder name"):
        run_benchmark(two_configs, tmp_path / "w", categories="../victim", live=False)
    assert not (tmp_path / "victim").exists() and not (tmp_path / "w").exists()
