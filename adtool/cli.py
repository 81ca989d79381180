"""The ``adtool`` command line: train, test, benchmark, ensemble, infer, export, report,
list-configs, print-config.

tools/train.py and tools/test.py call the same commands. A user mistake
(:class:`adtool.errors.AdtoolError`) prints one line and exits with status 2; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from adtool.errors import AdtoolError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Config-driven industrial anomaly detection.",
)
console = Console()
err_console = Console(stderr=True)

ConfigArg = Annotated[str, typer.Argument(help="Config path, config stem or model name.")]
DataRootOpt = Annotated[
    str | None, typer.Option("--data-root", help="Dataset root; sets every dataloader.")
]
CategoryOpt = Annotated[
    str | None, typer.Option("--category", help="Category NAME, 'a,b' or 'all'.")
]
WorkDirOpt = Annotated[
    str | None, typer.Option("--work-dir", help="Output root (default work_dirs/<config>).")
]
DatasetOpt = Annotated[
    str | None,
    typer.Option(
        "--dataset",
        help="Dataset preset: mvtec, visa, btad, folder or sample (default: recognised from "
        "the layout under --data-root, else the config's).",
    ),
]
CfgOpt = Annotated[
    list[str] | None,
    typer.Option("--cfg-options", help="Override a config key: a.b=value (repeatable)."),
]

MultiClassOpt = Annotated[
    bool | None,
    typer.Option(
        "--multi-class/--single-class",
        help="One model trained on all the --category categories, tested per category "
        "(default: the config's multi_class key, else single-class).",
    ),
]


ReportOpt = Annotated[
    bool | None,
    typer.Option(
        "--report/--no-report",
        help="Write report.html (one self-contained page) per category and for the work dir "
        "(default: the config's html_report key, else yes).",
    ),
]


class Launcher(str, Enum):
    """How the processes of a run were started (mmengine's ``cfg.launcher``)."""

    none = "none"
    pytorch = "pytorch"
    slurm = "slurm"


LauncherOpt = Annotated[
    Launcher,
    typer.Option(
        "--launcher",
        help="Distributed start: none (one process), pytorch (torchrun, tools/dist_train.sh) "
        "or slurm (srun, tools/slurm_train.sh).",
    ),
]


def _with_launcher(cfg_options: list[str] | None, launcher: Launcher) -> list[str] | None:
    """Set ``cfg.launcher`` as MMDetection's tools do (adtool.engine.dist starts the group)."""
    if launcher is Launcher.none:
        return cfg_options
    return [*(cfg_options or []), f"launcher={launcher.value}"]


def _is_main() -> bool:
    """False on the other ranks of a distributed run: one process prints."""
    from mmengine.dist import is_main_process

    return is_main_process()


def _fail(error: Exception) -> None:
    # escape: a message may hold brackets (the expected trees: defect[/<defect_type>]).
    err_console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _task_table(results: list[dict]) -> Table:
    """The metrics of a HuggingFace task run (no categories)."""
    table = Table(title=", ".join(sorted({str(r["config"]) for r in results})))
    table.add_column("task")
    names = [k for k in results[0]["metrics"]]
    for name in (*names, "train s", "img/s"):
        table.add_column(name, justify="right")
    for r in results:
        values = [r["metrics"].get(k) for k in names]
        timing = r["timing"]
        table.add_row(
            r["task"],
            *("-" if v is None else f"{v:.4f}" for v in values),
            "-" if timing.get("train_s") is None else f"{timing['train_s']:.1f}",
            "-" if not timing.get("test_images_per_s") else f"{timing['test_images_per_s']:.1f}",
        )
    return table


def _summary_table(results: list[dict]) -> Table:
    if results and "metrics" in results[0]:  # a HuggingFace task: its own metrics
        return _task_table(results)
    configs = sorted({str(r["config"]) for r in results})
    table = Table(title=", ".join(configs))
    table.add_column("category")
    for col in ("image AUROC", "image F1", "pixel AUROC", "AUPRO", "train s", "img/s"):
        table.add_column(col, justify="right")

    def fmt(value, digits: int = 4) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    for r in results:
        pixel = r.get("pixel") or {}
        name = str(r["category"]) if len(configs) == 1 else f"{r['config']}/{r['category']}"
        table.add_row(
            name,
            fmt(r["image"]["AUROC"]),
            fmt(r["image"]["F1_max"]),
            fmt(pixel.get("AUROC")),
            fmt(pixel.get("AUPRO")),
            fmt(r["timing"]["train_s"], 1),
            fmt(r["timing"]["test_images_per_s"], 1),
        )
    return table


def _print_result(result: dict, work_dir: Path) -> None:
    if result.get("category") is None:  # data without categories: results in work_dir itself
        console.print(f"[bold]{result['task']}[/]: results -> {work_dir}")
        return
    image = result["image"]
    auroc = "-" if image["AUROC"] is None else f"{image['AUROC']:.4f}"
    console.print(
        f"[bold]{result['category']}[/]: image AUROC {auroc} -> "
        f"{work_dir / str(result['category'])}"
    )
    normal_only = result.get("normal_only")
    if normal_only:
        parts = [
            f"{name} = {entry['value']:.6g} ({entry['expected_false_alarm_rate']:.1%} false alarms)"
            for name, entry in normal_only["percentile_thresholds"].items()
            if entry.get("value") is not None
        ]
        console.print(
            f"  normal-only: {normal_only['n_normal']} held-out normal images; " + ", ".join(parts),
            highlight=False,
            soft_wrap=True,
        )


def _say(message: str) -> None:
    """One informational line (the main process only)."""
    if _is_main():
        console.print(message, highlight=False, markup=False, soft_wrap=True)


def _work_root(config: str, work_dir: str | None) -> Path:
    from adtool.apis.config_index import resolve_config

    return Path(work_dir) if work_dir else Path("work_dirs") / resolve_config(config).stem


@app.command()
def train(
    config: ConfigArg,
    data_root: DataRootOpt = None,
    category: CategoryOpt = None,
    work_dir: WorkDirOpt = None,
    dataset: DatasetOpt = None,
    cfg_options: CfgOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Resume from the last checkpoint.")
    ] = False,
    launcher: LauncherOpt = Launcher.none,
    multi_class: MultiClassOpt = None,
    report: ReportOpt = None,
) -> None:
    """Fit or train CONFIG, then test it and write the results files per category."""
    from adtool.apis import run

    try:
        root = _work_root(config, work_dir)
        results = run(
            config,
            data_root=data_root,
            category=category,
            work_dir=root,
            dataset=dataset,
            on_message=_say,
            cfg_options=_with_launcher(cfg_options, launcher),
            resume=resume,
            on_result=lambda r: _is_main() and _print_result(r, root),
            multi_class=multi_class,
            report=report,
        )
    except AdtoolError as e:
        _fail(e)
    if _is_main():
        console.print(_summary_table(results))


@app.command()
def test(
    config: ConfigArg,
    checkpoint: Annotated[str, typer.Argument(help="Checkpoint written by train.")],
    data_root: DataRootOpt = None,
    category: CategoryOpt = None,
    work_dir: WorkDirOpt = None,
    dataset: DatasetOpt = None,
    cfg_options: CfgOpt = None,
    launcher: LauncherOpt = Launcher.none,
    multi_class: MultiClassOpt = None,
    report: ReportOpt = None,
) -> None:
    """Test a saved CHECKPOINT of CONFIG and write the results files."""
    from adtool.apis import run

    try:
        root = _work_root(config, work_dir)
        results = run(
            config,
            checkpoint=checkpoint,
            data_root=data_root,
            category=category,
            work_dir=root,
            dataset=dataset,
            on_message=_say,
            cfg_options=_with_launcher(cfg_options, launcher),
            on_result=lambda r: _is_main() and _print_result(r, root),
            multi_class=multi_class,
            report=report,
        )
    except AdtoolError as e:
        _fail(e)
    if _is_main():
        console.print(_summary_table(results))


@app.command()
def benchmark(
    configs: Annotated[
        list[str] | None,
        typer.Option("--configs", help="Configs to compare: --configs A.py B.py (paths or stems)."),
    ] = None,
    models: Annotated[
        str | None,
        typer.Option("--models", help="Short model names, e.g. patchcore,padim (default configs)."),
    ] = None,
    data_root: DataRootOpt = None,
    categories: Annotated[
        str, typer.Option("--categories", help="'all', 'a,b' or one category.")
    ] = "all",
    work_dir: Annotated[
        str, typer.Option("--work-dir", help="Output root of the tables and every pair.")
    ] = "work_dirs/benchmark",
    cfg_options: CfgOpt = None,
    dataset: Annotated[
        str | None,
        typer.Option("--dataset", help="Dataset preset for every config (mvtec, visa, sample...)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Rerun pairs that already finished.")
    ] = False,
    threads: Annotated[
        int | None, typer.Option("--threads", help="torch threads (torch.set_num_threads).")
    ] = None,
    report: Annotated[
        bool,
        typer.Option(
            "--report/--no-report",
            help="Write report.html for the benchmark (heatmap, winners, pair summaries) and "
            "for every pair.",
        ),
    ] = True,
) -> None:
    """Run every (config, category) pair and write benchmark.md/.csv/.json and a heatmap.

    Finished pairs are skipped on a rerun; a failing pair is recorded and the others go on;
    the exit status is 1 when any pair failed.
    """
    import shlex

    from adtool.apis.benchmark import model_configs, run_benchmark

    parts = ["adtool", "benchmark"]
    if configs:
        parts += ["--configs", *configs]
    if models:
        parts += ["--models", models]
    for flag, value in (("--data-root", data_root), ("--dataset", dataset)):
        if value is not None:
            parts += [flag, value]
    parts += ["--categories", categories, "--work-dir", work_dir]
    if cfg_options:
        parts += ["--cfg-options", *cfg_options]
    if threads is not None:
        parts += ["--threads", str(threads)]
    if force:
        parts.append("--force")
    if not report:
        parts.append("--no-report")
    try:
        names = [*(configs or []), *model_configs(models)]
        summary = run_benchmark(
            names,
            work_dir,
            data_root=data_root,
            categories=categories,
            cfg_options=cfg_options,
            dataset=dataset,
            force=force,
            threads=threads,
            command=shlex.join(parts),
            console=err_console,
            report=report,
        )
    except AdtoolError as e:
        _fail(e)
    console.print(_benchmark_table(summary))
    style = "bold red" if summary.failed else "bold green"
    console.print(Text(summary.line(), style=style), highlight=False, soft_wrap=True)
    for row in summary.failed:
        console.print(
            f"  failed {row['config']}/{row['category']}: {row['reason']}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    if summary.failed:
        raise typer.Exit(1)


def _benchmark_table(summary) -> Table:
    from adtool.apis.benchmark import MEAN

    rows = summary.pairs
    configs = list(dict.fromkeys(r["config"] for r in rows))
    categories = list(dict.fromkeys(r["category"] for r in rows))
    cell = {(r["config"], r["category"]): r for r in [*rows, *summary.means]}
    table = Table(title="image AUROC (best in bold)")
    table.add_column("config")
    for category in [*categories, MEAN]:
        table.add_column(category, justify="right")
    for config in configs:
        values = []
        for category in [*categories, MEAN]:
            row = cell[(config, category)]
            if row["image_AUROC"] is None:
                values.append(row["status"] if category != MEAN else "-")
            else:
                text = f"{row['image_AUROC']:.4f}"
                values.append(f"[bold]{text}[/]" if row["best"] else text)
        table.add_row(config, *values)
    return table


@app.command()
def ensemble(
    from_benchmark: Annotated[
        str, typer.Option("--from-benchmark", help="The --work-dir of a finished benchmark.")
    ],
    top_k: Annotated[int, typer.Option("--top-k", help="Members per category (best first).")] = 3,
    rule: Annotated[
        str, typer.Option("--rule", help="Fusion rule: mean, max, rank or weighted.")
    ] = "mean",
    categories: Annotated[
        str, typer.Option("--categories", help="'all' (the benchmark's) or 'a,b'.")
    ] = "all",
    weights: Annotated[
        str | None,
        typer.Option("--weights", help="--rule weighted: one weight per member, e.g. 2,1,1."),
    ] = None,
    calibration: Annotated[
        str,
        typer.Option(
            "--calibration",
            help="holdout: refit the members without a held-out share of the normal training "
            "images and normalise on those; train: normalise on the members' own training "
            "images.",
        ),
    ] = "holdout",
    holdout_fraction: Annotated[
        float,
        typer.Option("--holdout-fraction", help="Share of normal training images held out."),
    ] = 0.2,
    holdout_seed: Annotated[
        int, typer.Option("--holdout-seed", help="Seed of the held-out split.")
    ] = 0,
    force: Annotated[
        bool, typer.Option("--force", help="Rerun categories whose ensemble finished (and refit).")
    ] = False,
    threads: Annotated[
        int | None, typer.Option("--threads", help="torch threads (torch.set_num_threads).")
    ] = None,
    cfg_options: CfgOpt = None,
) -> None:
    """Ensemble the top-k models per category of a finished benchmark, fit, test, add its row.

    Writes <D>/ensemble_top<k>_<rule>.py (…_train.py with --calibration train), the results
    into <D>/<that name>/<category>/ and rebuilds benchmark.md/.csv/.json with the ensemble
    as one more row. With holdout calibration the refitted members go to
    <D>/ensemble_members/holdout<fraction>_seed<seed>/ (reused by every rule). --cfg-options
    go into the ensemble config.
    """
    import shlex

    from adtool.apis.ensemble import run_ensemble
    from adtool.errors import ConfigError

    parts = ["adtool", "ensemble", "--from-benchmark", from_benchmark, "--top-k", str(top_k)]
    parts += ["--rule", rule, "--categories", categories, "--calibration", calibration]
    if calibration == "holdout":
        parts += [
            "--holdout-fraction",
            f"{holdout_fraction:g}",
            "--holdout-seed",
            str(holdout_seed),
        ]
    if weights:
        parts += ["--weights", weights]
    if threads is not None:
        parts += ["--threads", str(threads)]
    if cfg_options:
        parts += ["--cfg-options", *cfg_options]
    if force:
        parts.append("--force")
    try:
        try:
            values = None if weights is None else [float(w) for w in weights.split(",")]
        except ValueError:
            raise ConfigError(f"--weights '{weights}' is not comma-separated numbers") from None
        summary = run_ensemble(
            from_benchmark,
            top_k=top_k,
            rule=rule,
            categories=categories,
            weights=values,
            calibration=calibration,
            holdout_fraction=holdout_fraction,
            holdout_seed=holdout_seed,
            force=force,
            threads=threads,
            cfg_options=cfg_options,
            command=shlex.join(parts),
            console=err_console,
        )
    except AdtoolError as e:
        _fail(e)
    console.print(_ensemble_table(summary))
    style = "bold red" if summary.failed else "bold green"
    console.print(Text(summary.line(), style=style), highlight=False, soft_wrap=True)
    if summary.failed:
        raise typer.Exit(1)


def _ensemble_table(summary) -> Table:
    def fmt(value, sign: bool = False) -> str:
        if value is None:
            return "-"
        return f"{value:+.4f}" if sign else f"{value:.4f}"

    table = Table(title=f"{summary.name} vs the best single model per category")
    for column in ("category", "members", "best single"):
        table.add_column(column)
    for key in ("image AUROC", "pixel AUROC", "AUPRO"):
        table.add_column(key, justify="right")
        table.add_column("vs best", justify="right")
    table.add_column("top member as used", justify="right")
    for row in summary.comparison:
        names = ", ".join(m["name"] for m in summary.members.get(row["category"], []))
        cells = []
        for key in ("image_AUROC", "pixel_AUROC", "pixel_AUPRO"):
            cells += [fmt(row[key]), fmt(row[f"delta_{key}"], sign=True)]
        top = " / ".join(
            fmt(row.get(f"top_member_{k}")) for k in ("image_AUROC", "pixel_AUROC", "pixel_AUPRO")
        )
        table.add_row(row["category"], names, row["best_single"] or "-", *cells, top)
    return table


@app.command()
def infer(
    config: ConfigArg,
    checkpoint: Annotated[str, typer.Argument(help="Checkpoint written by train.")],
    inputs: Annotated[list[str], typer.Argument(help="Images and/or folders (recursive).")],
    out: Annotated[
        str | None,
        typer.Option("--out", help="Output folder (default work_dirs/infer/<config>)."),
    ] = None,
    threshold: Annotated[
        str | None,
        typer.Option(
            "--threshold",
            help="f1_percentile, f1_uniform, youden_j, percentile_95, percentile_99, "
            "percentile_99_9 (normal-only data), nfa (U-Flow's a-contrario detection) or a "
            "number (default: the one stored at test time).",
        ),
    ] = None,
    thresholds_from: Annotated[
        str | None,
        typer.Option("--thresholds-from", help="results.json or thresholds.json of the test run."),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="Torch device.")] = "cpu",
    dataset: DatasetOpt = None,
    cfg_options: CfgOpt = None,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Stop at the first unreadable image (default: skip it)."),
    ] = False,
    backend: Annotated[
        Backend,
        typer.Option(
            "--backend",
            help="pytorch (CHECKPOINT is a .pth), onnxruntime or openvino (CHECKPOINT is the "
            ".onnx written by export).",
        ),
    ] = "pytorch",
) -> None:
    """Score images with a trained CHECKPOINT: predictions.csv and an overlay per image.

    An image that cannot be read is listed in predictions.csv (status column) and in one
    warning line, the others are scored, and the exit status is 1; --strict stops at it.
    """
    from adtool.apis.inference import infer as run_infer

    try:
        out_dir = Path(out) if out else Path("work_dirs/infer") / _work_root(config, None).name
        rows = run_infer(
            config,
            checkpoint,
            inputs,
            out_dir,
            threshold,
            thresholds_from=thresholds_from,
            device=device,
            cfg_options=cfg_options,
            dataset=dataset,
            strict=strict,
            backend=Backend(backend).value,
        )
    except AdtoolError as e:
        _fail(e)
    if isinstance(rows, dict):  # a HuggingFace task: infer_task's summary
        count = rows.get("n_images", len(rows.get("predictions", [])))
        console.print(f"{count} images -> {out_dir}", highlight=False, soft_wrap=True)
        _warn_failed([f["image"] for f in rows.get("failed", [])], out_dir)
        return
    _print_infer_summary(rows, out_dir)
    _warn_failed([r["path"] for r in rows if r.get("status", "ok") != "ok"], out_dir)


def _warn_failed(failed: list[str], out_dir: Path) -> None:
    """One warning line for the images that could not be read; exit status 1."""
    if not failed:
        return
    shown = ", ".join(failed[:3]) + (f" and {len(failed) - 3} more" if len(failed) > 3 else "")
    err_console.print(
        f"[bold yellow]warning:[/] {len(failed)} image(s) could not be read and were skipped: "
        f"{shown} (status column of {out_dir / 'predictions.csv'}; --strict stops at the first)",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(1)


def _print_infer_summary(rows: list[dict], out_dir: Path) -> None:
    rows = [r for r in rows if r.get("score") is not None]
    labelled = [r for r in rows if r.get("label") is not None]
    if labelled:
        first = labelled[0]
        at = f"{first['threshold_name']} = {first['threshold_value']:.6g}"
        verdict = f"{sum(r['label'] for r in labelled)} anomalous at {at}"
    else:
        verdict = "no threshold stored or given: scores only (use --threshold)"
    console.print(
        f"{len(rows)} images: {verdict} -> {out_dir / 'predictions.csv'}",
        highlight=False,
        soft_wrap=True,
    )


@app.command("report")
def report_command(
    work_dir: Annotated[
        str,
        typer.Argument(
            help="A category run folder (results.json), a work dir of several categories, or "
            "a benchmark work dir (benchmark.json)."
        ),
    ],
) -> None:
    """Write WORK_DIR/report.html: one self-contained page (images embedded) to read a run.

    A category: metrics, thresholds, confusion matrix, histogram, ROC/PR, the worst false
    positives and negatives with their maps, per-defect AUROC. A work dir: a summary table
    and one such section per category. A benchmark: the models x categories heatmap, the
    winner of each category and every pair's summary (a missing pair report is written).
    """
    from adtool.evaluation.html_report import write_html_report

    try:
        path = write_html_report(work_dir)
    except AdtoolError as e:
        _fail(e)
    console.print(f"report -> {path}", highlight=False, markup=False, soft_wrap=True)


class Backend(str, Enum):
    """What runs the model in ``infer``."""

    pytorch = "pytorch"
    onnxruntime = "onnxruntime"
    openvino = "openvino"


class ExportFormat(str, Enum):
    """File formats of ``export``."""

    onnx = "onnx"


class InputDtype(str, Enum):
    """The exported graph's input type (0-255 scale either way)."""

    uint8 = "uint8"
    float32 = "float32"


@app.command("export")
def export(
    config: ConfigArg,
    checkpoint: Annotated[str, typer.Argument(help="Checkpoint written by train.")],
    fmt: Annotated[ExportFormat, typer.Option("--format", help="Export format.")] = "onnx",
    out: Annotated[
        str | None, typer.Option("--out", help="File to write (default: CHECKPOINT as .onnx).")
    ] = None,
    dynamic_batch: Annotated[
        bool, typer.Option("--dynamic-batch", help="Free batch size (default: fixed, --batch).")
    ] = False,
    batch: Annotated[int, typer.Option("--batch", help="Batch of a fixed-batch graph.")] = 1,
    fp16: Annotated[
        bool,
        typer.Option("--fp16", help="float16 weights (half the file), float32 arithmetic."),
    ] = False,
    input_size: Annotated[
        int | None,
        typer.Option("--input-size", help="Square input size (default: the model's/pipeline's)."),
    ] = None,
    input_dtype: Annotated[
        InputDtype,
        typer.Option("--input-dtype", help="uint8 (raw images) or float32 (0-255 floats)."),
    ] = "uint8",
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset (>= 17).")] = 17,
    cfg_options: CfgOpt = None,
) -> None:
    """Export CONFIG's model with CHECKPOINT to one ONNX graph: raw image -> score, map, label.

    The graph normalises the image, runs the model and its post-processor (thresholds and
    normalisation stored at test time); run it with `infer --backend onnxruntime` (or openvino).
    """
    from adtool.deploy.export import export_checkpoint

    try:
        path, meta = export_checkpoint(
            config,
            checkpoint,
            out,
            fmt=ExportFormat(fmt).value,
            cfg_options=cfg_options,
            input_size=input_size,
            dynamic_batch=dynamic_batch,
            batch_size=batch,
            fp16=fp16,
            input_dtype=InputDtype(input_dtype).value,
            opset=opset,
        )
    except AdtoolError as e:
        _fail(e)
    h, w = meta["input_size"]
    threshold = meta["threshold_name"] or "no threshold stored (no label output)"
    console.print(
        f"{meta['model']} -> {path} ({h}x{w} {meta['input_dtype']}, outputs "
        f"{', '.join(meta['outputs'])}; threshold {threshold})",
        highlight=False,
        soft_wrap=True,
    )


@app.command("list-configs")
def list_configs_command() -> None:
    """List every model config."""
    from adtool.apis.config_index import config_aliases, default_config, list_configs

    defaults = set()
    for folder in sorted({p.parent.name for p in list_configs()}):
        try:
            found = default_config(folder)
        except AdtoolError:
            found = None
        if found is not None:
            defaults.add(found.stem)
    table = Table(title="adtool configs")
    table.add_column("model")
    table.add_column("config")
    table.add_column("default", justify="center")
    table.add_column("alias (original name)")
    for path in list_configs():
        table.add_row(
            path.parent.name,
            path.stem,
            "*" if path.stem in defaults else "",
            ", ".join(config_aliases(path)),
        )
    # Full names even in a narrow or piped terminal (rich would cut them with an ellipsis).
    # (Console.print's width= can only narrow, so a wider console of its own).
    Console(width=max(console.width, 130)).print(table)


@app.command("print-config")
def print_config(config: ConfigArg, cfg_options: CfgOpt = None) -> None:
    """Print CONFIG fully merged (its _base_ files and --cfg-options applied)."""
    from adtool.apis import load_config

    try:
        cfg = load_config(config, cfg_options)
    except AdtoolError as e:
        _fail(e)
    sys.stdout.write(cfg.pretty_text + "\n")


# Options that take several values after one flag (argparse's nargs='+'), and what a value
# looks like; typer wants the flag repeated.
_MULTI_VALUE_OPTIONS = {
    "--cfg-options": lambda arg: not arg.startswith("-") and "=" in arg,
    "--configs": lambda arg: not arg.startswith("-"),
}


def expand_cfg_options(argv: list[str]) -> list[str]:
    """Accept MMDetection's ``--cfg-options a=1 b=2`` (and ``--configs A.py B.py``) by
    repeating the flag for typer."""
    out: list[str] = []
    flag = None
    first = False
    for arg in argv:
        if arg in _MULTI_VALUE_OPTIONS:
            flag, first = arg, True
            continue
        # The first value after the flag is the flag's, even without '=': the parser then
        # says "not KEY=VALUE" instead of typer's "unexpected extra argument".
        if flag is not None and (_MULTI_VALUE_OPTIONS[flag](arg) or first):
            out += [flag, arg]
            first = False
            continue
        flag = None
        out.append(arg)
    if flag is not None and first:
        out.append(flag)  # a trailing flag without a value: typer reports it
    return out


def main(argv: list[str] | None = None, prog_name: str = "adtool") -> None:
    """Entry point of the ``adtool`` command and of tools/*.py."""
    args = sys.argv[1:] if argv is None else argv
    app(expand_cfg_options(args), prog_name=prog_name)


if __name__ == "__main__":
    main()
