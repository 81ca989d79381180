"""Run many (config, category) pairs and tabulate their results: ``tools/benchmark.py``.

Each pair goes through the same :func:`adtool.apis.core.run_category` as
``tools/train.py`` and writes into ``<work_dir>/<config stem>/<category>/``. The state of
a benchmark lives on disk only, so it survives being killed at any moment:

* a pair is *finished* when its ``results.json`` is valid JSON with the DESIGN.md keys
  and no ``incomplete.txt`` lies beside it; a rerun skips it and takes its row from that
  file (``force=True`` reruns it). ``incomplete.txt`` is written before the pair starts and
  removed only after :func:`~adtool.apis.core.run_category` returned, i.e. after the
  thresholds, plots and checkpoint metadata that follow ``results.json`` were written:
  a pair killed at any moment in between is redone. (Folders of older versions have no
  marker; their ``results.json`` alone still counts.)
* a pair that raised is *failed*: ``error.txt`` beside its results holds the one-line
  reason, then the traceback; a rerun retries it;
* any other pair is *pending*.

After every pair the tables ``benchmark.md``, ``benchmark.csv``, ``benchmark.json`` and
``benchmark_heatmap.png`` are rebuilt from those files and written atomically
(:mod:`adtool.fileio`), so a reader never sees a half-written table.

Best per category: the highest image AUROC among finished pairs, ties broken by pixel
AUPRO, pixel AUROC, then image F1-max; pairs still tied are all marked.
"""

from __future__ import annotations

import copy
import csv
import gc
import io
import json
import math
import os
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mmengine.config import Config

from adtool.apis.config_index import resolve_config
from adtool.apis.core import (
    load_config,
    parse_cfg_options,
    resolve_categories,
    run_category,
    set_data,
    use_dataset,
)
from adtool.errors import AdtoolError, ConfigError
from adtool.evaluation.html_report import write_html_report
from adtool.fileio import atomic_write_text

# The results.json keys of the DESIGN.md contract: a file lacking one is not finished.
RESULT_KEYS = (
    "model", "config", "dataset", "category", "image", "pixel", "thresholds", "confusion",
    "per_defect", "timing", "n_train", "n_test",
)  # fmt: skip
METRICS = ("image_AUROC", "image_AUPR", "image_F1_max", "pixel_AUROC", "pixel_AUPRO")
TIMINGS = ("train_s", "test_s", "images_per_s")
COLUMNS = (
    "config", "model", "dataset", "category", *METRICS, *TIMINGS, "status", "best", "reason",
)  # fmt: skip
# Ranking of pairs within a category, most important first.
RANK_KEYS = ("image_AUROC", "pixel_AUPRO", "pixel_AUROC", "image_F1_max")
MEAN = "mean"
ERROR_FILE = "error.txt"
# Present while a pair runs: its results.json may exist before the pair's last file does.
INCOMPLETE_FILE = "incomplete.txt"
TABLE_NAMES = ("benchmark.md", "benchmark.csv", "benchmark.json", "benchmark_heatmap.png")


@dataclass
class Pair:
    """One (config, category) run of a benchmark."""

    config: str
    category: str
    out_dir: Path
    model: str
    cfg: Config = field(repr=False)

    @property
    def name(self) -> str:
        return f"{self.config}/{self.category}"


@dataclass
class BenchmarkSummary:
    """What :func:`run_benchmark` did: the rows of the tables and this session's work."""

    work_dir: Path
    pairs: list[dict]
    means: list[dict]
    ran: int
    skipped: int

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.pairs if r["status"] == "failed"]

    @property
    def ok(self) -> list[dict]:
        return [r for r in self.pairs if r["status"] == "ok"]

    def line(self) -> str:
        """The one-line summary the CLI prints."""
        n_failed = len(self.failed)
        n_pending = len(self.pairs) - len(self.ok) - n_failed
        text = (
            f"{len(self.pairs)} pairs: {len(self.ok)} ok, {n_failed} failed"
            + (f", {n_pending} pending" if n_pending else "")
            + f" (ran {self.ran}, skipped {self.skipped} finished) -> "
            + str(self.work_dir / "benchmark.md")
        )
        if n_failed:
            text += f"; {n_failed} pair(s) FAILED, see error.txt in their folders"
        return text


def model_configs(models: str | Iterable[str] | None) -> list[Path]:
    """``'patchcore,padim'`` (short names, stems or paths) -> config paths."""
    if models is None:
        return []
    if isinstance(models, str):
        models = models.split(",")
    return [resolve_config(m.strip()) for m in models if m.strip()]


def _without_progress_hook(cfg: Config) -> None:
    # The benchmark draws its own live display; a second rich display per pair would
    # fight it for the terminal.
    hooks = cfg.get("custom_hooks") or []
    cfg.custom_hooks = [
        h for h in hooks if not (isinstance(h, dict) and h.get("type") == "RichProgressHook")
    ]


def plan_pairs(
    configs: Sequence[str | os.PathLike],
    work_dir: str | os.PathLike,
    *,
    data_root: str | os.PathLike | None = None,
    categories: str | None = "all",
    cfg_options: dict | Iterable[str] | None = None,
    dataset: str | None = None,
) -> list[Pair]:
    """Load every config and list its (config, category) pairs, config-major.

    Raises:
        ConfigError: for a config that cannot be found or read, two configs with the same
            stem (they would share a folder), or a config that is not an anomaly model.
        DataError: when ``categories='all'`` finds no category under the data root.
    """
    paths = [resolve_config(c) for c in configs]
    if not paths:
        raise ConfigError("no configs to benchmark; pass --configs A.py B.py or --models a,b")
    stems: dict[str, Path] = {}
    for path in paths:
        if path.stem in stems:
            raise ConfigError(
                f"config '{path.stem}' given twice ({stems[path.stem]}, {path}); results of a "
                "config go to <work-dir>/<config stem>/, so stems must differ"
            )
        stems[path.stem] = path
    pairs = []
    for path in paths:
        cfg = load_config(path, cfg_options)
        task = cfg.get("task", "anomaly")
        if task != "anomaly":
            raise ConfigError(
                f"config {path.stem} is a '{task}' config; the benchmark compares anomaly "
                "models over categories"
            )
        if dataset is not None:
            use_dataset(cfg, dataset)
        set_data(cfg, data_root=data_root)
        _without_progress_hook(cfg)
        model = str(cfg.model.get("type", "?"))
        for category in resolve_categories(cfg, categories):
            if str(category) in ("", ".", "..") or Path(str(category)).name != str(category):
                # The pair's folder is written to before its run checks anything.
                raise ConfigError(
                    f"category '{category}' is not a folder name; pass a name without "
                    "separators or '..'"
                )
            out = Path(work_dir) / path.stem / str(category)
            pairs.append(Pair(path.stem, str(category), out, model, cfg))
    return pairs


def load_finished(out_dir: str | os.PathLike, category: str | None = None) -> dict | None:
    """The results of a finished pair, or None when ``results.json`` is missing or partial
    or the pair was interrupted (``incomplete.txt`` is present).

    Args:
        out_dir: The pair's folder.
        category: When given, a results file of another category does not count.
            Defaults to None.
    """
    if (Path(out_dir) / INCOMPLETE_FILE).exists():
        return None
    path = Path(out_dir) / "results.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or any(k not in data for k in RESULT_KEYS):
        return None
    if category is not None and str(data.get("category")) != category:
        return None
    return data


def _failure_reason(out_dir: Path) -> str | None:
    try:
        text = (out_dir / ERROR_FILE).read_text(encoding="utf-8")
    except OSError:
        return None
    return text.splitlines()[0] if text.strip() else "failed (empty error.txt)"


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def pair_row(pair: Pair) -> dict:
    """The table row of one pair, read from its folder (status ok, failed or pending)."""
    row = dict.fromkeys(COLUMNS)
    row.update(config=pair.config, model=pair.model, category=pair.category, best=False)
    row["reason"] = ""
    results = load_finished(pair.out_dir, pair.category)
    if results is None:
        reason = _failure_reason(pair.out_dir)
        if (pair.out_dir / INCOMPLETE_FILE).exists():
            row.update(status="pending", reason="interrupted before all its files were written")
        elif reason is None:
            row.update(status="pending", reason="not run yet")
        else:
            row.update(status="failed", reason=reason)
        return row
    image = results.get("image") or {}
    pixel = results.get("pixel") or {}
    timing = results.get("timing") or {}
    row.update(
        model=results.get("model", pair.model),
        dataset=results.get("dataset"),
        image_AUROC=_number(image.get("AUROC")),
        image_AUPR=_number(image.get("AUPR")),
        image_F1_max=_number(image.get("F1_max")),
        pixel_AUROC=_number(pixel.get("AUROC")),
        pixel_AUPRO=_number(pixel.get("AUPRO")),
        train_s=_number(timing.get("train_s")),
        test_s=_number(timing.get("test_s")),
        images_per_s=_number(timing.get("test_images_per_s")),
        status="ok",
    )
    return row


def _mean(values: Iterable) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def mean_rows(rows: list[dict]) -> list[dict]:
    """One row per config: metrics and timings averaged over its finished pairs."""
    means = []
    for config in dict.fromkeys(r["config"] for r in rows):
        own = [r for r in rows if r["config"] == config]
        ok = [r for r in own if r["status"] == "ok"]
        row = dict.fromkeys(COLUMNS)
        datasets = sorted({str(r["dataset"]) for r in ok if r["dataset"]})
        row.update(
            config=config,
            model=own[0]["model"],
            dataset=",".join(datasets) or None,
            category=MEAN,
            best=False,
        )
        for key in (*METRICS, *TIMINGS):
            row[key] = _mean(r[key] for r in ok)
        row["status"] = "ok" if len(ok) == len(own) else f"{len(ok)}/{len(own)} ok"
        row["reason"] = "" if len(ok) == len(own) else f"mean over {len(ok)} of {len(own)} pairs"
        means.append(row)
    return means


def _rank(row: dict) -> tuple:
    return tuple(-math.inf if row[k] is None else row[k] for k in RANK_KEYS)


def mark_best(rows: list[dict], means: list[dict]) -> None:
    """Set ``best`` on the top pair(s) of each category and the top complete mean row(s)."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        if row["status"] == "ok" and row["image_AUROC"] is not None:
            groups.setdefault(row["category"], []).append(row)
    complete = [m for m in means if m["status"] == "ok" and m["image_AUROC"] is not None]
    if complete:
        groups[f"\0{MEAN}"] = complete  # cannot clash with a category name
    for group in groups.values():
        top = max(_rank(r) for r in group)
        for row in group:
            row["best"] = _rank(row) == top


def collect_rows(pairs: Sequence[Pair]) -> tuple[list[dict], list[dict]]:
    """Pair rows (plan order) and mean rows, best marked, all read from disk."""
    rows = [pair_row(p) for p in pairs]
    means = mean_rows(rows)
    mark_best(rows, means)
    return rows, means


# ---------------------------------------------------------------------------- tables


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _bold(text: str, on: bool) -> str:
    return f"**{text}**" if on and text != "-" else text


def format_markdown(
    rows: list[dict], means: list[dict], settings: dict, command: str | None = None
) -> str:
    """``benchmark.md``: image-AUROC pivot, the full table and the failures."""
    configs = list(dict.fromkeys(r["config"] for r in rows))
    categories = list(dict.fromkeys(r["category"] for r in rows))
    by_key = {(r["config"], r["category"]): r for r in rows}
    n_ok = sum(r["status"] == "ok" for r in rows)
    n_failed = sum(r["status"] == "failed" for r in rows)
    lines = ["# Benchmark", ""]
    if command:
        lines += ["```bash", command, "```", ""]
    data = settings.get("data_root") or "each config's data_root"
    lines += [
        f"Data: `{data}`"
        + (f" (dataset preset `{settings['dataset']}`)" if settings.get("dataset") else "")
        + f". {len(rows)} pairs: {n_ok} ok, {n_failed} failed, "
        f"{len(rows) - n_ok - n_failed} pending. Updated {settings.get('updated', '-')}.",
        "",
        "Best per category in **bold**: highest image AUROC, ties broken by pixel AUPRO, "
        "pixel AUROC, image F1-max. Means are over each config's finished pairs.",
        "",
        "## Image AUROC",
        "",
        "| category | " + " | ".join(f"`{c}`" for c in configs) + " |",
        "| --- |" + " ---: |" * len(configs),
    ]
    mean_by_config = {m["config"]: m for m in means}
    for category in categories:
        cells = []
        for config in configs:
            row = by_key.get((config, category))
            if row is None:
                cells.append("")
            elif row["status"] != "ok":
                cells.append(row["status"])
            else:
                cells.append(_bold(_fmt(row["image_AUROC"]), row["best"]))
        lines.append(f"| {_cell(category)} | " + " | ".join(cells) + " |")
    lines.append(
        "| **mean** | "
        + " | ".join(
            _bold(_fmt(mean_by_config[c]["image_AUROC"]), mean_by_config[c]["best"])
            for c in configs
        )
        + " |"
    )
    lines += [
        "",
        "## All metrics",
        "",
        "| config | model | category | image AUROC | image AUPR | image F1 | pixel AUROC | "
        "pixel AUPRO | train s | test s | img/s | status |",
        "| --- | --- | --- |" + " ---: |" * 8 + " --- |",
    ]
    for config in configs:
        for row in [r for r in rows if r["config"] == config] + [mean_by_config[config]]:
            best = row["best"]
            category = "**mean**" if row["category"] == MEAN else _cell(row["category"])
            lines.append(
                f"| {_bold(f'`{config}`', best)} | {row['model']} | {category} | "
                + " | ".join(_bold(_fmt(row[k]), best and k == "image_AUROC") for k in METRICS)
                + " | "
                + " | ".join(_fmt(row[k], 2 if k == "train_s" else 1) for k in TIMINGS)
                + f" | {_cell(row['status'])} |"
            )
    failed = [r for r in rows if r["status"] == "failed"]
    if failed:
        lines += ["", "## Failures", ""]
        for row in failed:
            lines.append(
                f"- `{row['config']}` / `{row['category']}`: {_cell(row['reason'])} "
                f"(traceback: `{row['config']}/{row['category']}/{ERROR_FILE}`)"
            )
    return "\n".join(lines) + "\n"


def format_csv(rows: list[dict], means: list[dict]) -> str:
    """``benchmark.csv``: pair rows, then one ``mean`` row per config; ``best`` is 0/1."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in [*rows, *means]:
        out = {k: ("" if row[k] is None else row[k]) for k in COLUMNS}
        out["best"] = int(bool(row["best"]))
        for key in (*METRICS, *TIMINGS):
            if row[key] is not None:
                out[key] = repr(float(row[key]))
        writer.writerow(out)
    return buf.getvalue()


def heatmap_data(
    rows: list[dict], means: list[dict]
) -> tuple[list[str], list[str], list[list[float]], list[list[str]], list[list[bool]]]:
    """Configs x (categories + mean) image AUROC, cell labels for non-finished pairs, best."""
    configs = list(dict.fromkeys(r["config"] for r in rows))
    categories = list(dict.fromkeys(r["category"] for r in rows))
    by_key = {(r["config"], r["category"]): r for r in [*rows, *means]}
    values, notes, best = [], [], []
    for config in configs:
        v_row, n_row, b_row = [], [], []
        for category in [*categories, MEAN]:
            row = by_key.get((config, category))
            value = None if row is None else row["image_AUROC"]
            v_row.append(math.nan if value is None else value)
            note = "" if row is None or row["status"] == "ok" else row["status"]
            n_row.append("" if category == MEAN and value is not None else note)
            b_row.append(bool(row and row["best"]))
        values.append(v_row)
        notes.append(n_row)
        best.append(b_row)
    return configs, [*categories, MEAN], values, notes, best


def write_tables(
    work_dir: str | os.PathLike,
    rows: list[dict],
    means: list[dict],
    settings: dict,
    command: str | None = None,
) -> None:
    """Write ``benchmark.{md,csv,json}`` and ``benchmark_heatmap.png``, each atomically."""
    from adtool.visualization.heatmap import plot_score_heatmap

    work_dir = Path(work_dir)
    settings = {**settings, "updated": time.strftime("%Y-%m-%d %H:%M:%S")}
    atomic_write_text(work_dir / "benchmark.csv", format_csv(rows, means))
    payload = {"command": command, "settings": settings, "pairs": rows, "means": means}
    atomic_write_text(
        work_dir / "benchmark.json", json.dumps(payload, indent=2, allow_nan=False) + "\n"
    )
    configs, columns, values, notes, best = heatmap_data(rows, means)
    plot_score_heatmap(
        values,
        configs,
        columns,
        work_dir / "benchmark_heatmap.png",
        title="Image AUROC (best per column outlined in red)",
        notes=notes,
        best=best,
    )
    # The Markdown last: it is what a person opens, and it names the files above.
    atomic_write_text(work_dir / "benchmark.md", format_markdown(rows, means, settings, command))


# -------------------------------------------------------------------------- progress


class _Reporter:
    """Progress of a benchmark: a rich live bar on a terminal, one line per pair elsewhere."""

    def __init__(self, console=None, live: bool | None = None) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self.live = self.console.is_terminal if live is None else live
        self.durations: list[float] = []
        self.total = 0
        self.done = 0
        self.remaining = 0
        self._progress = None
        self._task = None
        self._pair_start = None

    def eta(self) -> float | None:
        """Seconds left: mean time of the pairs run in this session x pairs left to run."""
        if not self.durations:
            return None
        spent = 0.0 if self._pair_start is None else time.perf_counter() - self._pair_start
        return max(0.0, sum(self.durations) / len(self.durations) * self.remaining - spent)

    def start(self, total: int, finished: int, to_run: int) -> None:
        self.total, self.done, self.remaining = total, finished, to_run
        head = f"benchmark: {total} pairs, {finished} already finished, {to_run} to run"
        self.console.print(head, highlight=False)
        if not self.live or not to_run:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.text import Text

        reporter = self

        class EtaColumn(ProgressColumn):
            def render(self, task) -> Text:
                eta = reporter.eta()
                text = "?" if eta is None else time.strftime("%H:%M:%S", time.gmtime(eta))
                return Text(f"ETA {text}", style="progress.remaining")

        self._progress = Progress(
            TextColumn("[bold]pairs"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            EtaColumn(),
            TextColumn("{task.fields[current]}"),
            console=self.console,
        )
        self._progress.start()
        self._task = self._progress.add_task("pairs", total=total, completed=finished, current="")

    def pair_started(self, pair: Pair) -> None:
        self._pair_start = time.perf_counter()
        if self._progress is not None:
            self._progress.update(self._task, current=pair.name)

    def pair_finished(self, pair: Pair, row: dict, seconds: float) -> None:
        self._pair_start = None
        self.durations.append(seconds)
        self.done += 1
        self.remaining -= 1
        from rich.text import Text

        line = Text(f"[{self.done}/{self.total}] {pair.name}: ")
        if row["status"] == "ok":
            line.append(f"ok, image AUROC {_fmt(row['image_AUROC'])}")
        else:
            line.append(row["status"], style="bold red")
            line.append(f": {row['reason']}")
        line.append(f" ({seconds:.1f} s)")
        self.console.print(line, highlight=False)
        if self._progress is not None:
            self._progress.update(self._task, completed=self.done, current="")

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


# ------------------------------------------------------------------------------ run


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def _write_benchmark_report(work_dir: Path, console) -> None:
    """``report.html`` of the benchmark; a failure is one warning line (the tables are
    written, and ``adtool report DIR`` retries)."""
    try:
        write_html_report(work_dir)
    except (AdtoolError, OSError, ValueError) as e:
        console.print(
            f"warning: report.html not written in {work_dir}: {e}; rerun `adtool report "
            f"{work_dir}`",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def _run_pair(pair: Pair, report: bool | None = None) -> None:
    """Run one pair; on an exception write ``error.txt`` and leave no results.json.

    ``incomplete.txt`` marks the pair as unfinished from before it starts until
    run_category has returned (or its failure is recorded): results.json is not the last
    file a run writes, so a kill after it must not make the pair look finished.
    """
    _remove(pair.out_dir / ERROR_FILE)
    atomic_write_text(
        pair.out_dir / INCOMPLETE_FILE,
        f"started {time.strftime('%Y-%m-%d %H:%M:%S')}; this pair is not finished until "
        "this file is gone (a benchmark rerun redoes it)\n",
    )
    try:
        run_category(copy.deepcopy(pair.cfg), pair.category, pair.out_dir, report=report)
    except Exception as error:
        # A failed pair must not look finished, even if it failed after writing results.
        _remove(pair.out_dir / "results.json")
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        reason = f"{type(error).__name__}: {first}" if first else type(error).__name__
        atomic_write_text(pair.out_dir / ERROR_FILE, f"{reason}\n\n{traceback.format_exc()}")
    finally:
        # Runners hold models and data; free them before the next pair.
        gc.collect()
    # Reached after success or a recorded failure; an interrupt keeps the marker.
    _remove(pair.out_dir / INCOMPLETE_FILE)


def run_benchmark(
    configs: Sequence[str | os.PathLike],
    work_dir: str | os.PathLike = "work_dirs/benchmark",
    *,
    data_root: str | os.PathLike | None = None,
    categories: str | None = "all",
    cfg_options: dict | Iterable[str] | None = None,
    dataset: str | None = None,
    force: bool = False,
    threads: int | None = None,
    command: str | None = None,
    console=None,
    live: bool | None = None,
    on_pair: Callable[[Pair, dict], None] | None = None,
    report: bool = True,
) -> BenchmarkSummary:
    """Run every (config, category) pair not yet finished and write the tables.

    Args:
        configs: Config paths, stems or short model names.
        work_dir: Output root; pair results go to ``<work_dir>/<config stem>/<category>/``.
            Defaults to ``'work_dirs/benchmark'``.
        data_root: Overrides every config's dataset root. Defaults to None.
        categories: ``'all'``, ``'a,b'``, a name, or None for each config's own.
            Defaults to ``'all'``.
        cfg_options: ``--cfg-options`` overrides applied to every config. Defaults to None.
        dataset: Swap in ``configs/_base_/datasets/<dataset>.py``. Defaults to None.
        force: Rerun finished pairs too (each one's old results are removed just before
            it runs). Defaults to False.
        threads: ``torch.set_num_threads`` for the run; None leaves torch's setting.
            Defaults to None.
        command: The command line, quoted in ``benchmark.md``. Defaults to None.
        console: rich console for progress. Defaults to a stderr console.
        live: Draw the live progress bar; None draws it on a terminal only.
            Defaults to None.
        on_pair: Called with each pair and its row after it ran. Defaults to None.
        report: Write ``report.html`` for every pair and, after every pair, the
            benchmark's (heatmap, winners, each pair's summary;
            :mod:`adtool.evaluation.html_report`). Defaults to True.

    Returns:
        The rows written and counts of this session. A ``KeyboardInterrupt`` is not
        caught: the tables on disk then describe every pair finished so far.
    """
    if threads is not None:
        import torch

        if threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    work_dir = Path(work_dir)
    pairs = plan_pairs(
        configs,
        work_dir,
        data_root=data_root,
        categories=categories,
        cfg_options=cfg_options,
        dataset=dataset,
    )
    settings = {
        "configs": list(dict.fromkeys(p.config for p in pairs)),
        "categories": categories,
        "data_root": None if data_root is None else str(data_root),
        "dataset": dataset,
        "cfg_options": [f"{k}={v}" for k, v in parse_cfg_options(cfg_options).items()],
        "force": force,
        "threads": threads,
    }
    to_run = [p for p in pairs if force or load_finished(p.out_dir, p.category) is None]
    work_dir.mkdir(parents=True, exist_ok=True)
    write_tables(work_dir, *collect_rows(pairs), settings, command)
    reporter = _Reporter(console, live)
    reporter.start(len(pairs), len(pairs) - len(to_run), len(to_run))
    try:
        for pair in to_run:
            reporter.pair_started(pair)
            if force and load_finished(pair.out_dir) is not None:
                # The old results go now, so that the tables never show them as this
                # session's while the pair reruns.
                _remove(pair.out_dir / "results.json")
                write_tables(work_dir, *collect_rows(pairs), settings, command)
            start = time.perf_counter()
            _run_pair(pair, None if report else False)
            seconds = time.perf_counter() - start
            rows, means = collect_rows(pairs)
            write_tables(work_dir, rows, means, settings, command)
            if report:
                _write_benchmark_report(work_dir, reporter.console)
            row = next(
                r for r in rows if r["config"] == pair.config and r["category"] == pair.category
            )
            reporter.pair_finished(pair, row, seconds)
            if on_pair is not None:
                on_pair(pair, row)
    finally:
        reporter.stop()
    rows, means = collect_rows(pairs)
    if report and not to_run:  # nothing ran: the report may predate this version
        _write_benchmark_report(work_dir, reporter.console)
    return BenchmarkSummary(
        work_dir, rows, means, ran=len(to_run), skipped=len(pairs) - len(to_run)
    )
