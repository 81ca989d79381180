"""The ``adtool`` command line: train, test, list-configs, print-config.

tools/train.py and tools/test.py call the same commands. A user mistake
(:class:`adtool.errors.AdtoolError`) prints one line and exits with status 2; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

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
CfgOpt = Annotated[
    list[str] | None,
    typer.Option("--cfg-options", help="Override a config key: a.b=value (repeatable)."),
]


def _fail(error: Exception) -> None:
    err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _summary_table(results: list[dict]) -> Table:
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
    image = result["image"]
    auroc = "-" if image["AUROC"] is None else f"{image['AUROC']:.4f}"
    console.print(
        f"[bold]{result['category']}[/]: image AUROC {auroc} -> "
        f"{work_dir / str(result['category'])}"
    )


def _work_root(config: str, work_dir: str | None) -> Path:
    from adtool.apis.config_index import resolve_config

    return Path(work_dir) if work_dir else Path("work_dirs") / resolve_config(config).stem


@app.command()
def train(
    config: ConfigArg,
    data_root: DataRootOpt = None,
    category: CategoryOpt = None,
    work_dir: WorkDirOpt = None,
    cfg_options: CfgOpt = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Resume from the last checkpoint.")
    ] = False,
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
            cfg_options=cfg_options,
            resume=resume,
            on_result=lambda r: _print_result(r, root),
        )
    except AdtoolError as e:
        _fail(e)
    console.print(_summary_table(results))


@app.command()
def test(
    config: ConfigArg,
    checkpoint: Annotated[str, typer.Argument(help="Checkpoint written by train.")],
    data_root: DataRootOpt = None,
    category: CategoryOpt = None,
    work_dir: WorkDirOpt = None,
    cfg_options: CfgOpt = None,
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
            cfg_options=cfg_options,
            on_result=lambda r: _print_result(r, root),
        )
    except AdtoolError as e:
        _fail(e)
    console.print(_summary_table(results))


@app.command("list-configs")
def list_configs_command() -> None:
    """List every model config."""
    from adtool.apis.config_index import DEFAULT_CONFIGS, list_configs

    defaults = set(DEFAULT_CONFIGS.values())
    table = Table(title="adtool configs")
    table.add_column("model")
    table.add_column("config")
    table.add_column("default", justify="center")
    for path in list_configs():
        table.add_row(path.parent.name, path.stem, "*" if path.stem in defaults else "")
    console.print(table)


@app.command("print-config")
def print_config(config: ConfigArg, cfg_options: CfgOpt = None) -> None:
    """Print CONFIG fully merged (its _base_ files and --cfg-options applied)."""
    from adtool.apis import load_config

    try:
        cfg = load_config(config, cfg_options)
    except AdtoolError as e:
        _fail(e)
    sys.stdout.write(cfg.pretty_text + "\n")


def expand_cfg_options(argv: list[str]) -> list[str]:
    """Accept MMDetection's ``--cfg-options a=1 b=2`` by repeating the flag for typer."""
    out: list[str] = []
    in_options = False
    for arg in argv:
        if arg == "--cfg-options":
            in_options = True
            continue
        if in_options and not arg.startswith("-") and "=" in arg:
            out += ["--cfg-options", arg]
            continue
        in_options = False
        out.append(arg)
    return out


def main(argv: list[str] | None = None, prog_name: str = "adtool") -> None:
    """Entry point of the ``adtool`` command and of tools/*.py."""
    args = sys.argv[1:] if argv is None else argv
    app(expand_cfg_options(args), prog_name=prog_name)


if __name__ == "__main__":
    main()
