"""The one run path behind tools/train.py, tools/test.py, the CLI and the Python API.

Layer 3 of ``adtool.apis``: config_index -> checkpoints / inputs -> thresholds -> core
-> inference / tasks / benchmark; no module imports one above it. For every config,
anomaly or HuggingFace task alike: build a runner, fit or train, test, then let the test
metric write its own outputs (``metric.write_outputs(work_dir, results)``), store the
thresholds with the tested model, and write ``results.json`` last (atomically), so a run
killed earlier never looks finished. Anomaly data has categories (results in
``<work_dir>/<category>/``); a dataset without a ``category`` setting writes into
``<work_dir>`` itself.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.dist import barrier, is_main_process
from mmengine.logging import print_log
from mmengine.runner.checkpoint import _load_checkpoint_to_model

from adtool.apis.checkpoints import (
    check_state_dict,
    complete_model_cfg,
    last_checkpoint,
    read_checkpoint,
    unwrap,
    weights_from_checkpoint,
)
from adtool.apis.config_index import config_root, dataset_name, resolve_config, task_of
from adtool.apis.overrides import check_override_keys
from adtool.apis.thresholds import attach_thresholds, is_inside
from adtool.datasets.layout import detect_layout
from adtool.engine.dist import main_value, prepare_config
from adtool.errors import AdtoolError, ConfigError, DataError
from adtool.evaluation.html_report import write_html_report
from adtool.evaluation.report import format_results_json
from adtool.fileio import atomic_write_text
from adtool.registry import DATASETS, RUNNERS, register_all_modules

LOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")


def parse_cfg_options(options: Iterable[str] | dict | None) -> dict:
    """``['a.b=1', 'c=[1,2]']`` (mmengine ``--cfg-options`` syntax) -> dict."""
    if not options:
        return {}
    if isinstance(options, dict):
        return dict(options)
    parsed = {}
    for item in options:
        if "=" not in item:
            raise ConfigError(f"--cfg-options item '{item}' is not KEY=VALUE; e.g. a.b=1")
        key, value = item.split("=", 1)
        parsed[key] = DictAction._parse_iterable(value)
    return parsed


def load_config(
    config: str | os.PathLike, cfg_options: dict | Iterable[str] | None = None
) -> Config:
    """Read a config (path, stem or model name) and merge ``cfg_options`` into it."""
    path = resolve_config(config)
    try:
        cfg = Config.fromfile(str(path))
    except (SyntaxError, NameError, KeyError, FileNotFoundError) as e:
        raise ConfigError(f"config {path} could not be read: {type(e).__name__}: {e}") from None
    options = parse_cfg_options(cfg_options)
    check_override_keys(cfg, options)  # a typo is an error, not a silently added key
    if options:
        cfg.merge_from_dict(options)
    return cfg


def _loader_datasets(cfg: Config) -> list[ConfigDict]:
    return [cfg[k]["dataset"] for k in LOADERS if cfg.get(k) and cfg[k].get("dataset")]


def set_data(
    cfg: Config, data_root: str | os.PathLike | None = None, category: str | None = None
) -> None:
    """Point every dataloader's dataset at ``data_root`` / ``category``."""
    for dataset in _loader_datasets(cfg):
        if data_root is not None:
            dataset["data_root"] = str(data_root)
        if category is not None:
            dataset["category"] = category


def use_dataset(cfg: Config, dataset: str) -> None:
    """Swap every dataloader's dataset for ``configs/_base_/datasets/<dataset>.py``'s.

    The model's pipelines are kept, so a config written for MVTec runs on VisA, BTAD,
    a folder or the sample data.
    """
    preset_path = config_root() / "_base_" / "datasets" / f"{dataset}.py"
    if not preset_path.is_file():
        known = sorted(p.stem for p in preset_path.parent.glob("*.py"))
        raise ConfigError(f"unknown dataset '{dataset}'; known: {', '.join(known)}")
    preset = Config.fromfile(str(preset_path))
    for key in LOADERS:
        if not cfg.get(key) or not preset.get(key):
            continue
        new = copy.deepcopy(preset[key]["dataset"])
        new["pipeline"] = cfg[key]["dataset"]["pipeline"]
        new["split"] = cfg[key]["dataset"].get("split", new.get("split"))
        cfg[key]["dataset"] = new


def choose_dataset(
    cfg: Config,
    data_root: str | os.PathLike,
    category: str | None,
    on_message: Callable[[str], object] | None = None,
) -> tuple[Path, str | None]:
    """Recognise the layout under ``data_root`` and use its dataset preset (no --dataset).

    The config's own dataset is kept when the layout is its own (the sample data counts
    as the MVTec layout). Without ``category``, the config's category is run when it is
    on disk, else every category folder of the layout. When this changes the dataset or
    the category, one line says what was chosen (to ``on_message``, else the log).

    Returns:
        The data root to read and the category argument for :func:`resolve_categories`.

    Raises:
        DataError: one line with the expected trees when no layout matches.
    """
    single = category if category and category != "all" and "," not in category else None
    check_category(single)  # before it becomes part of a path to look at
    layout = detect_layout(data_root, single)
    current = dataset_name(_dataset_spec(cfg).get("type"))
    swapped = layout.dataset != current and not (layout.dataset == "mvtec" and current == "sample")
    if swapped:
        use_dataset(cfg, layout.dataset)
    picked = False
    if category is None:
        own = _dataset_spec(cfg).get("category")
        if layout.category is not None:
            category, picked = layout.category, True
        elif layout.categories and own not in layout.categories:
            category, picked = ",".join(layout.categories), True
    if swapped or picked:
        chosen = dataset_name(_dataset_spec(cfg).get("type"))
        message = f"data layout: {layout.description} in {data_root} -> --dataset {chosen}" + (
            f", category {category}" if category else ""
        )
        if on_message is not None:
            on_message(message)
        else:
            print_log(message, logger="current")
    return layout.data_root, category


def _dataset_spec(cfg: Config) -> ConfigDict:
    loader = cfg.get("test_dataloader") or cfg.get("train_dataloader")
    if not loader or not loader.get("dataset"):
        raise ConfigError("config has no test_dataloader.dataset or train_dataloader.dataset")
    return loader["dataset"]


def check_category(name: str | None) -> None:
    """Refuse a category that is not a single folder name (it names an output folder).

    Raises:
        ConfigError: for an empty name, ``.``/``..``, a path separator or an absolute path.
    """
    if name is None:
        return
    text = str(name)
    if (
        not text.strip()
        or text in (".", "..")
        or "/" in text
        or "\\" in text
        or "\x00" in text
        or os.path.isabs(text)
        or Path(text).drive
    ):
        raise ConfigError(
            f"category '{text}' is not a folder name (no '/', '\\', '..' or absolute path); "
            "pass the name of one category folder, e.g. --category bottle"
        )


def output_dir(root: str | os.PathLike, category: str | None) -> Path:
    """``<root>/<category>`` (``root`` without a category), checked to stay inside ``root``.

    Raises:
        ConfigError: when the category would lead outside ``root``.
    """
    check_category(category)
    root = Path(root)
    out = root if category is None else root / str(category)
    if not is_inside(out, root):
        raise ConfigError(f"category '{category}' would write outside the work dir {root}")
    return out


def ensure_writable(folder: str | os.PathLike, flag: str = "--work-dir") -> Path:
    """Create ``folder`` and check that a file can be written in it, before any work.

    Raises:
        ConfigError: naming the folder, why it cannot be written and the option to change.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".adtool-write-check-"):
            pass
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ConfigError(
            f"output folder {folder} cannot be written ({reason}); pass {flag} with a folder "
            "you can write to"
        ) from None
    return folder


def resolve_categories(cfg: Config, category: str | None) -> list[str | None]:
    """``None`` (the config's), ``'all'``, ``'a,b'`` or ``'a'`` -> list of categories.

    A dataset without a ``category`` setting (the HuggingFace task data) gives ``[None]``.

    Raises:
        ConfigError: for a category name that is not a folder name, or a category for a
            dataset that has none.
        DataError: when ``'all'`` finds no category folder.
    """
    spec = _dataset_spec(cfg)
    if "category" not in spec:
        if category is not None:
            raise ConfigError(
                f"the {spec.get('type')} dataset of this config has no categories; drop "
                f"--category {category}"
            )
        return [None]
    if category is None:
        names = [spec.get("category")]
    elif category != "all":
        names = [c.strip() for c in category.split(",") if c.strip()]
    else:
        register_all_modules()
        dataset_cls = DATASETS.get(spec["type"])
        names = list(dataset_cls.list_categories(spec["data_root"]))
        if not names:
            raise DataError(
                f"no categories found under {spec['data_root']}; pass --data-root pointing at "
                "the folder that holds the category folders"
            )
    for name in names:
        check_category(name)
    return names


def build_runner(
    cfg: Config,
    category: str | None,
    work_dir: str | os.PathLike,
    checkpoint: str | os.PathLike | None = None,
    resume: bool | str = False,
):
    """An mmengine runner for one category (or a dataset without one) writing into
    ``work_dir``; with ``checkpoint`` no pretrained weights are read (the file has them)."""
    register_all_modules()
    cfg = copy.deepcopy(cfg)
    set_data(cfg, category=category)
    complete_model_cfg(cfg)
    cfg.work_dir = str(work_dir)
    prepare_config(cfg)  # --launcher pytorch|slurm: starts torch.distributed
    stem = Path(cfg.filename).stem if cfg.filename else "config"
    parts = [stem] if category is None else [stem, str(category)]
    # Clock and pid differ between ranks: all take the main process's name.
    cfg.experiment_name = main_value(
        "_".join([*parts, time.strftime("%Y%m%d_%H%M%S"), str(os.getpid())])
    )
    if checkpoint is not None:
        # run_category loads the checkpoint itself (read once, checked, then loaded); a
        # config's own load_from must not replace it when the test starts.
        cfg.load_from = None
        with weights_from_checkpoint(cfg):
            return runner_from_cfg(cfg, None, resume)
    return runner_from_cfg(cfg, None, resume)


def runner_from_cfg(cfg: Config, checkpoint: str | None = None, resume: bool | str = False):
    """The config's runner (``runner_type``), loading ``checkpoint`` or resuming.

    Raises:
        DataError: when ``checkpoint`` does not exist.
        ConfigError: when ``runner_type`` is not registered.
    """
    if checkpoint is not None:
        if not Path(checkpoint).is_file():
            raise DataError(
                f"checkpoint {checkpoint} not found; pass the .pth a training run wrote"
            )
        cfg.load_from = str(checkpoint)
    if resume:
        cfg.resume = True
        if isinstance(resume, str):
            cfg.load_from = resume
    prepare_config(cfg)  # idempotent; HF task runs come here directly
    runner_type = cfg.get("runner_type", "AnomalyRunner")
    runner_cls = RUNNERS.get(runner_type)
    if runner_cls is None:
        raise ConfigError(f"runner_type '{runner_type}' is not registered")
    return runner_cls.from_cfg(cfg)


def release_logs(runner) -> None:
    """Close the run's log file: a benchmark of many pairs would otherwise keep one open
    file per finished pair (mmengine keeps every logger alive by name)."""
    for handler in list(runner.logger.handlers):
        if isinstance(handler, logging.FileHandler):
            handler.close()
            runner.logger.removeHandler(handler)


def jsonable(value):
    """``value`` with numpy/torch scalars as Python numbers and NaN/inf as None (valid JSON)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def load_tested_checkpoint(runner, path: str | os.PathLike) -> None:
    """Load ``path`` into the runner's model, refusing in one line a file that is
    unreadable or holds another model or backbone than the config builds."""
    loaded = read_checkpoint(path)
    check_state_dict(runner.model, loaded, path, runner.cfg.model)
    runner.call_hook("after_load_checkpoint", checkpoint=loaded)
    # Keys were checked above; the post-processor's may be absent in older files.
    _load_checkpoint_to_model(unwrap(runner.model), loaded, strict=False)
    runner.logger.info(f"Load checkpoint from {path}")


def _check_resume(runner, work_dir: Path, resume: bool | str) -> None:
    """One line for a resume checkpoint that is unreadable or of another model (mmengine
    then reads it again, with its optimiser state)."""
    if not resume:
        return
    path = Path(resume) if isinstance(resume, str) else last_checkpoint(work_dir)
    if path is not None:
        check_state_dict(runner.model, read_checkpoint(path), path, runner.cfg.model)


def _after_training(runner, work_dir: Path) -> dict:
    """What training did, and the weights to test: the last (default) or the best epoch.

    ``test_from = "best"`` in a config loads the checkpoint that the checkpoint hook kept
    for the best validation score before testing.
    """
    barrier()  # distributed: the main process may still be writing the best checkpoint
    info = runner.message_hub.runtime_info
    best_path = info.get("best_ckpt")
    last = last_checkpoint(work_dir)
    train = {
        "epochs": runner.epoch,
        "iters": runner.iter,
        "best_image_AUROC": info.get("best_score"),
        "best_checkpoint": best_path,
        "tested": "last",
        "checkpoint": None if last is None else str(last),
    }
    test_from = runner.cfg.get("test_from", "last")
    if test_from not in ("last", "best"):
        raise ConfigError(f"test_from must be 'last' or 'best', got {test_from!r}")
    if test_from == "best":
        if best_path and Path(best_path).is_file():
            runner.load_checkpoint(best_path)
            train["tested"] = "best"
        else:
            runner.logger.warning("test_from='best' but no best checkpoint was saved; testing last")
    return train


def wants_report(cfg: Config, report: bool | None) -> bool:
    """``report`` (the ``--no-report`` flag) when given, else the config's ``html_report``
    key (default True); HuggingFace task runs have no HTML report."""
    if task_of(cfg) != "anomaly":
        return False
    return bool(cfg.get("html_report", True) if report is None else report)


def write_report_page(folder: str | os.PathLike) -> Path | None:
    """Write ``<folder>/report.html`` after a run; a failure is one warning, not a failed
    run (the results are written already, and ``adtool report DIR`` can retry)."""
    try:
        return write_html_report(folder, pair_reports=False)
    except (AdtoolError, OSError, ValueError) as e:
        print_log(
            f"report.html not written in {folder}: {e}; rerun `adtool report {folder}`",
            logger="current",
            level=logging.WARNING,
        )
        return None


def _test_metric(runner):
    metric = runner.test_evaluator.metrics[0]
    report = getattr(metric, "last_report", None)
    if not isinstance(report, dict) or not hasattr(metric, "write_outputs"):
        raise ConfigError(
            f"test metric {type(metric).__name__} keeps no last_report or has no write_outputs; "
            "use an adtool metric (AnomalyMetric, ClassificationMetric, ...) as test_evaluator"
        )
    return metric, report


def run_category(
    cfg: Config,
    category: str | None,
    work_dir: str | os.PathLike,
    checkpoint: str | None = None,
    resume: bool | str = False,
    extra: dict | None = None,
    report: bool | None = None,
) -> dict:
    """Fit/train (unless ``checkpoint`` is given), test, and write the results files.

    Args:
        cfg: A loaded config (``--data-root`` already applied).
        category: The category to run, or None for a dataset without categories.
        work_dir: This run's output folder.
        checkpoint: Test this saved model instead of training. Defaults to None.
        resume: Resume training from the work dir's last checkpoint (True) or a path.
            Defaults to False.
        extra: Blocks added to the results (the multi-class training). Defaults to None.
        report: Write ``report.html`` after ``results.json`` (:func:`wants_report`).
            Defaults to None: the config's ``html_report`` key, else True.

    Returns:
        The results dict written to ``<work_dir>/results.json``.
    """
    task = task_of(cfg)
    check_category(category)
    work_dir = ensure_writable(work_dir)
    page = report  # `report` names the test metric's report below
    runner = build_runner(cfg, category, work_dir, checkpoint=checkpoint, resume=resume)
    try:
        if checkpoint is not None:
            load_tested_checkpoint(runner, checkpoint)
        _check_resume(runner, work_dir, resume)
        if is_main_process():  # distributed: the main process alone writes files
            atomic_write_text(work_dir / "config.py", runner.cfg.pretty_text)
        train_s = 0.0
        n_train = None
        train_info = None
        if checkpoint is None and runner.cfg.get("train_cfg"):
            start = time.perf_counter()
            runner.train()
            train_s = time.perf_counter() - start
            n_train = len(runner.train_dataloader.dataset)
            train_info = _after_training(runner, work_dir)
        start = time.perf_counter()
        runner.test()
        test_s = time.perf_counter() - start
        metric, report = _test_metric(runner)
        n_test = report.get("n_test") or len(runner.test_dataloader.dataset)
        spec = _dataset_spec(runner.cfg)
        results = {
            "model": runner.cfg.model["type"],
            "config": Path(runner.cfg.filename).stem if runner.cfg.filename else None,
            "dataset": dataset_name(spec.get("type")),
            "category": category,
            "task": task,
            "data_root": spec.get("data_root"),
            **{k: v for k, v in report.items() if k not in ("n_test", "inference_thresholds")},
            "timing": {
                "train_s": round(train_s, 3),
                "test_s": round(test_s, 3),
                "test_images_per_s": round(n_test / test_s, 3) if test_s > 0 else None,
            },
            "n_train": n_train,
            "n_test": n_test,
        }
        if train_info is not None:
            results["train"] = train_info
        # A model may name what its numbers depend on (EfficientAD: teacher file, penalty
        # images or their fallback, validation split).
        info = getattr(unwrap(runner.model), "results_info", None)
        if callable(info):
            results["model_info"] = info()
        if checkpoint is not None:
            results["checkpoint"] = str(checkpoint)
        results.update(extra or {})
        results = jsonable(results)
        if is_main_process():  # it alone holds the test arrays (AnomalyMetric.evaluate)
            metric.write_outputs(work_dir, results)
            attach_thresholds(
                work_dir,
                results,
                checkpoint,
                model=runner.model,
                report=report,
                task=task,
                arrays=getattr(metric, "last_arrays", None),
            )
            # Last: a results.json means every other file of the run is there.
            atomic_write_text(work_dir / "results.json", format_results_json(results))
            if wants_report(runner.cfg, page):  # a view of the files above
                write_report_page(work_dir)
        barrier()  # every rank returns once the files exist
        return results
    finally:
        release_logs(runner)


MULTI_CLASS_DIR = "multi_class"


def multi_class_config(cfg: Config, categories: list[str]) -> Config:
    """``cfg`` training one model on the concatenation of ``categories``' training sets.

    Validation is dropped (it would need one evaluator per category; every category is
    tested after training), and with it the best-checkpoint tracking.
    """
    cfg = copy.deepcopy(cfg)
    loader = cfg["train_dataloader"]
    spec = loader["dataset"]
    loader["dataset"] = dict(
        type="ConcatDataset",
        datasets=[{**copy.deepcopy(spec), "category": c} for c in categories],
        # The parts differ in their category (and mask flag) only.
        ignore_keys=["category", "has_masks"],
    )
    for key in ("val_dataloader", "val_cfg", "val_evaluator"):
        cfg[key] = None
    checkpoint_hook = cfg.get("default_hooks", {}).get("checkpoint")
    if checkpoint_hook:
        checkpoint_hook["save_best"] = None
    return cfg


def run_multi_class(
    cfg: Config,
    categories: list[str],
    root: Path,
    checkpoint: str | None = None,
    resume: bool | str = False,
    on_result=None,
    report: bool | None = None,
) -> list[dict]:
    """Train one model on every category (unless ``checkpoint``), then test it per category.

    Training writes into ``<root>/multi_class/``; each category's results go to
    ``<root>/<category>/`` exactly as a single-class run's, with a ``multi_class`` block
    (categories, training time and iterations, the checkpoint tested); then
    ``<root>/multi_class/summary.json`` lists every category's AUROCs and their mean.
    """
    train_dir = ensure_writable(output_dir(root, MULTI_CLASS_DIR))
    block = {"categories": list(categories), "work_dir": str(train_dir)}
    if checkpoint is None:
        runner = build_runner(multi_class_config(cfg, categories), None, train_dir, resume=resume)
        try:
            _check_resume(runner, train_dir, resume)
            if is_main_process():
                atomic_write_text(train_dir / "config.py", runner.cfg.pretty_text)
            start = time.perf_counter()
            runner.train()
            block["train_s"] = round(time.perf_counter() - start, 3)
            block["n_train"] = len(runner.train_dataloader.dataset)
            block.update(_after_training(runner, train_dir))
        finally:
            release_logs(runner)
        checkpoint = block["checkpoint"]
        if checkpoint is None:
            raise ConfigError(
                f"multi-class training wrote no checkpoint in {train_dir}; keep "
                "default_hooks.checkpoint in the config"
            )
    block["tested_checkpoint"] = str(checkpoint)
    outputs = []
    for cat in categories:
        result = run_category(
            cfg,
            cat,
            output_dir(root, cat),
            checkpoint=checkpoint,
            extra={"multi_class": block},
            report=report,
        )
        outputs.append(result)
        if on_result is not None:
            on_result(result)
    rows = {
        r["category"]: {
            "image_AUROC": (r.get("image") or {}).get("AUROC"),
            "pixel_AUROC": (r.get("pixel") or {}).get("AUROC"),
            "pixel_AUPRO": (r.get("pixel") or {}).get("AUPRO"),
        }
        for r in outputs
    }
    means = {}
    for key in ("image_AUROC", "pixel_AUROC", "pixel_AUPRO"):
        values = [row[key] for row in rows.values() if row[key] is not None]
        means[key] = float(np.mean(values)) if values else None
    if is_main_process():
        summary = jsonable({**block, "results": rows, "mean": means})
        atomic_write_text(train_dir / "summary.json", format_results_json(summary))
    barrier()
    return outputs


def run(
    config: str | os.PathLike,
    *,
    data_root: str | os.PathLike | None = None,
    category: str | None = None,
    work_dir: str | os.PathLike | None = None,
    cfg_options: dict | Iterable[str] | None = None,
    dataset: str | None = None,
    checkpoint: str | None = None,
    resume: bool | str = False,
    on_result=None,
    on_message: Callable[[str], object] | None = None,
    multi_class: bool | None = None,
    report: bool | None = None,
) -> list[dict]:
    """Train (or load ``checkpoint``) and test ``config`` on each category.

    Multi-class (``multi_class=True`` or the config's ``multi_class = True``, with two or
    more categories): one model is trained on all the categories' training sets, then
    tested on each category (:func:`run_multi_class`).

    Args:
        config: Config path, stem or short model name.
        data_root: Overrides every dataloader's ``data_root``.
        category: ``None`` (the config's), a name, ``'a,b'`` or ``'all'``.
        work_dir: Output root; results go to ``<work_dir>/<category>/`` (``<work_dir>``
            for a dataset without categories). Defaults to ``work_dirs/<config stem>``.
        cfg_options: ``--cfg-options`` style overrides.
        dataset: Swap in ``configs/_base_/datasets/<dataset>.py`` (keeps the model's
            pipelines). None with ``data_root``: the layout found there picks it
            (:func:`choose_dataset`).
        checkpoint: Test this checkpoint instead of training.
        resume: Resume training from the work dir's last checkpoint (True) or a path.
        on_result: Called with each category's results dict as it finishes.
        on_message: Called with the line that says which dataset layout was recognised
            (default: mmengine's log).
        multi_class: One model for all categories; None takes the config's
            ``multi_class`` (default False).
        report: Write ``report.html`` per category and, for the work dir, one page of
            every category in it. None takes the config's ``html_report`` (default True).

    Returns:
        One results dict per category.
    """
    cfg = load_config(config, cfg_options)
    task_of(cfg)
    if dataset is not None:
        use_dataset(cfg, dataset)
    elif data_root is not None and task_of(cfg) == "anomaly":
        data_root, category = choose_dataset(cfg, data_root, category, on_message)
    set_data(cfg, data_root=data_root)
    root = Path(work_dir) if work_dir else Path("work_dirs") / Path(cfg.filename).stem
    categories = resolve_categories(cfg, category)
    multi = bool(cfg.get("multi_class", False) if multi_class is None else multi_class)
    multi = multi and len(categories) > 1 and None not in categories
    if checkpoint is not None and len(categories) > 1 and not multi:
        raise ConfigError(
            "a checkpoint belongs to one category; pass --category NAME (or --multi-class "
            "for a model trained on several)"
        )
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise DataError(f"checkpoint {checkpoint} not found; pass the .pth a training run wrote")
    out_dirs = [output_dir(root, cat) for cat in categories]
    ensure_writable(root)
    if multi:
        if MULTI_CLASS_DIR in categories:
            raise ConfigError(
                f"a category named '{MULTI_CLASS_DIR}' clashes with the multi-class training "
                "folder; rename it or run single-class"
            )
        outputs = run_multi_class(cfg, categories, root, checkpoint, resume, on_result, report)
    else:
        outputs = []
        for cat, out_dir in zip(categories, out_dirs):
            result = run_category(
                cfg, cat, out_dir, checkpoint=checkpoint, resume=resume, report=report
            )
            outputs.append(result)
            if on_result is not None:
                on_result(result)
    if None not in categories and wants_report(cfg, report) and is_main_process():
        write_report_page(root)  # every category folder of the work dir, this run's and older
    return outputs
