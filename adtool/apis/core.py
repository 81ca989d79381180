"""The one code path behind tools/train.py, tools/test.py, the CLI and the Python API.

For each category: build a runner from the config, fit or train, test, and write the
DESIGN.md results (results.json, results.txt, plots, overlays) into
``<work_dir>/<category>/``.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path

from mmengine.config import Config, ConfigDict, DictAction
from mmengine.dist import barrier, is_main_process

from adtool.apis.config_index import config_root, dataset_name, resolve_config
from adtool.engine.dist import main_value, prepare_config
from adtool.errors import ConfigError, DataError
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


def _dataset_spec(cfg: Config) -> ConfigDict:
    loader = cfg.get("test_dataloader") or cfg.get("train_dataloader")
    if not loader:
        raise ConfigError("config has no test_dataloader or train_dataloader")
    return loader["dataset"]


def resolve_categories(cfg: Config, category: str | None) -> list[str]:
    """``None`` (the config's), ``'all'``, ``'a,b'`` or ``'a'`` -> list of categories."""
    spec = _dataset_spec(cfg)
    if category is None:
        return [spec.get("category")]
    if category != "all":
        return [c.strip() for c in category.split(",") if c.strip()]
    register_all_modules()
    dataset_cls = DATASETS.get(spec["type"])
    found = dataset_cls.list_categories(spec["data_root"])
    if not found:
        raise DataError(
            f"no categories found under {spec['data_root']}; pass --data-root pointing at the "
            "folder that holds the category folders"
        )
    return list(found)


def _unload_pretrained(model_cfg) -> None:
    """Set ``weights=None`` on every timm backbone: a checkpoint carries the weights."""
    if isinstance(model_cfg, dict):
        if model_cfg.get("type") in ("TimmBackbone", "ViTTokenBackbone"):
            model_cfg["weights"] = None
        for value in model_cfg.values():
            _unload_pretrained(value)
    elif isinstance(model_cfg, list):
        for value in model_cfg:
            _unload_pretrained(value)


def build_runner(
    cfg: Config,
    category: str,
    work_dir: Path,
    checkpoint: str | None = None,
    resume: bool | str = False,
):
    """An mmengine runner for one category, writing into ``work_dir``."""
    register_all_modules()
    cfg = copy.deepcopy(cfg)
    set_data(cfg, category=category)
    cfg.work_dir = str(work_dir)
    prepare_config(cfg)  # --launcher pytorch|slurm: starts torch.distributed
    stem = Path(cfg.filename).stem if cfg.filename else "config"
    # Clock and pid differ between ranks: all take the main process's name.
    cfg.experiment_name = main_value(
        f"{stem}_{category}_{time.strftime('%Y%m%d_%H%M%S')}_{os.getpid()}"
    )
    if checkpoint is not None:
        _unload_pretrained(cfg.model)
    return runner_from_cfg(cfg, checkpoint, resume)


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


def _after_training(runner) -> dict:
    """What training did, and the weights to test: the last (default) or the best epoch.

    ``test_from = "best"`` in a config loads the checkpoint that the checkpoint hook kept
    for the best validation ``image_AUROC`` before testing.
    """
    barrier()  # distributed: the main process may still be writing the best checkpoint
    info = runner.message_hub.runtime_info
    best_path = info.get("best_ckpt")
    train = {
        "epochs": runner.epoch,
        "iters": runner.iter,
        "best_image_AUROC": info.get("best_score"),
        "best_checkpoint": best_path,
        "tested": "last",
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


def run_category(
    cfg: Config,
    category: str,
    work_dir: str | os.PathLike,
    checkpoint: str | None = None,
    resume: bool | str = False,
) -> dict:
    """Fit/train (unless ``checkpoint`` is given), test, and write the results files.

    Returns:
        The results dict written to ``<work_dir>/results.json``.
    """
    from adtool.apis.inference import attach_thresholds
    from adtool.evaluation import write_report
    from adtool.fileio import atomic_write_text

    if cfg.get("task", "anomaly") != "anomaly":
        from adtool.apis.tasks import run_task

        return run_task(cfg, work_dir, checkpoint=checkpoint, resume=resume)
    work_dir = Path(work_dir)
    runner = build_runner(cfg, category, work_dir, checkpoint=checkpoint, resume=resume)
    try:
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
            train_info = _after_training(runner)
        start = time.perf_counter()
        runner.test()
        test_s = time.perf_counter() - start
        metric = runner.test_evaluator.metrics[0]
        report = metric.last_report
        n_test = report.get("n_test") or len(runner.test_dataloader.dataset)
        dataset_type = _dataset_spec(runner.cfg)["type"]
        results = {
            "model": runner.cfg.model["type"],
            "config": Path(runner.cfg.filename).stem if runner.cfg.filename else None,
            "dataset": dataset_name(dataset_type),
            "category": category,
            **{k: v for k, v in report.items() if k not in ("n_test",)},
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
        if checkpoint is not None:
            results["checkpoint"] = str(checkpoint)
        if is_main_process():  # it alone holds the test arrays (AnomalyMetric.evaluate)
            write_report(work_dir, results, metric.last_arrays)
            attach_thresholds(work_dir, results, checkpoint)
        barrier()  # every rank returns once the files exist
        return results
    finally:
        release_logs(runner)


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
) -> list[dict]:
    """Train (or load ``checkpoint``) and test ``config`` on each category.

    Args:
        config: Config path, stem or short model name.
        data_root: Overrides every dataloader's ``data_root``.
        category: ``None`` (the config's), a name, ``'a,b'`` or ``'all'``.
        work_dir: Output root; results go to ``<work_dir>/<category>/``. Defaults to
            ``work_dirs/<config stem>``.
        cfg_options: ``--cfg-options`` style overrides.
        dataset: Swap in ``configs/_base_/datasets/<dataset>.py`` (keeps the model's
            pipelines).
        checkpoint: Test this checkpoint instead of training.
        resume: Resume training from the work dir's last checkpoint (True) or a path.
        on_result: Called with each category's results dict as it finishes.

    Returns:
        One results dict per category.
    """
    cfg = load_config(config, cfg_options)
    if dataset is not None:
        use_dataset(cfg, dataset)
    set_data(cfg, data_root=data_root)
    root = Path(work_dir) if work_dir else Path("work_dirs") / Path(cfg.filename).stem
    if cfg.get("task", "anomaly") != "anomaly":
        # HuggingFace tasks (classification, detection, ...) have no categories.
        from adtool.apis.tasks import run_task

        result = run_task(cfg, root, checkpoint=checkpoint, resume=resume)
        if on_result is not None:
            on_result(result)
        return [result]
    categories = resolve_categories(cfg, category)
    if checkpoint is not None and len(categories) > 1:
        raise ConfigError("a checkpoint belongs to one category; pass --category NAME")
    outputs = []
    for cat in categories:
        result = run_category(cfg, cat, root / str(cat), checkpoint=checkpoint, resume=resume)
        outputs.append(result)
        if on_result is not None:
            on_result(result)
    return outputs
