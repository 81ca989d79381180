"""The original framework's one-line Python API: ``train("mvtec", "bottle", "stfpm",
num_epochs=50)``, ``train_models(...)`` and ``set_globals(...)`` (docs/api.md).

Layer 5 of ``adtool.apis`` (beside ``inference``): it turns the original keywords into
``--cfg-options`` style dotted keys and calls :func:`adtool.apis.core.run` once per
(dataset, model, category), so these calls run exactly what ``adtool train`` would with
the same overrides. The mapping (:func:`keyword_options`):

* ``num_epochs``: ``train_cfg.max_epochs`` of an epoch loop; for an iteration loop
  ``max_iters = num_epochs * ceil(len(train set) / batch_size)`` (epochs over the train
  set, so the same number means the same on every model); a fit-once model (FitLoop) has
  no epochs: a warning says so and the run goes on.
* ``img_size``: the model's input size. Every ``CenterCrop`` of every pipeline becomes
  ``img_size`` and every ``Resize`` keeps the config's resize/crop ratio (256 -> 224 with
  ``img_size=448`` becomes 512 -> 448); without a crop ``Resize`` is ``img_size``. The
  model's ``input_size`` and a backbone's ``img_size`` (ViT/CaiT) follow.
* ``batch_size``: the train loader's.
* ``normalize=False``: inputs in [0, 1] (``mean=0``, ``std=255`` on the 0-255 scale), what
  skipping ``Normalize`` after ``ToTensor`` gave; ``True`` keeps the config's mean/std
  (ImageNet's when the config has none).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from mmengine.config import Config
from rich.console import Console
from rich.table import Table

from adtool.apis.config_index import config_root
from adtool.apis.core import (
    LOADERS,
    choose_dataset,
    load_config,
    resolve_categories,
    run,
    set_data,
    use_dataset,
)
from adtool.errors import ConfigError, DataError
from adtool.registry import DATASETS, register_all_modules

IMAGENET_MEAN = [123.675, 116.28, 103.53]
IMAGENET_STD = [58.395, 57.12, 57.375]

# set_globals' settings; None = the config's own value (the state before any call).
_UNSET = {
    "dataset_dir": None,
    "backbone_dir": None,
    "output_dir": None,
    "seed": None,
    "num_workers": None,
    "pin_memory": None,
    "persistent_workers": None,
}
_GLOBALS: dict = dict(_UNSET)
_ENV_BACKBONE = "ADTOOL_BACKBONE_DIR"
_ENV_BEFORE: list = []  # the environment value set_globals replaced (for reset_globals)


def presets() -> list[str]:
    """The dataset presets (``configs/_base_/datasets/<name>.py``) a dataset name may be."""
    return sorted(p.stem for p in (config_root() / "_base_" / "datasets").glob("*.py"))


def set_globals(
    dataset_dir: str | os.PathLike | None = None,
    backbone_dir: str | os.PathLike | None = None,
    output_dir: str | os.PathLike | None = None,
    seed: int | None = 42,
    num_workers: int | None = 8,
    pin_memory: bool | None = True,
    persistent_workers: bool | None = True,
    show_globals: bool = True,
) -> dict:
    """Set the defaults every later :func:`train` / :func:`train_models` call uses.

    Args:
        dataset_dir: Folder holding one folder per dataset: ``train("mvtec", ...)`` reads
            ``<dataset_dir>/mvtec``. None: each preset's own ``data_root``.
        backbone_dir: Pretrained backbone weights (sets ``$ADTOOL_BACKBONE_DIR``).
        output_dir: Work dir root: runs write ``<output_dir>/<config stem>/<category>``.
        seed: ``randomness.seed`` of every run.
        num_workers: Loader workers of every dataloader.
        pin_memory: ``pin_memory`` of every dataloader (when a GPU is there).
        persistent_workers: Kept workers between epochs (only with ``num_workers > 0``,
            which torch requires).
        show_globals: Print the settings as a table.

    Returns:
        The settings now in force.
    """
    new = {
        "dataset_dir": None if dataset_dir is None else str(dataset_dir),
        "backbone_dir": None if backbone_dir is None else str(backbone_dir),
        "output_dir": None if output_dir is None else str(output_dir),
        "seed": seed,
        "num_workers": num_workers,
        "pin_memory": pin_memory,
        "persistent_workers": persistent_workers,
    }
    if num_workers is not None and num_workers < 0:
        raise ConfigError(f"set_globals: num_workers must be >= 0, got {num_workers}")
    _GLOBALS.update(new)
    if backbone_dir is None:
        _restore_env()  # every setting is set by the call: None = back to the environment's
    else:
        if not _ENV_BEFORE:
            _ENV_BEFORE.append(os.environ.get(_ENV_BACKBONE))
        os.environ[_ENV_BACKBONE] = str(backbone_dir)
    if show_globals:
        _show(dict(_GLOBALS))
    return dict(_GLOBALS)


def get_globals() -> dict:
    """The settings :func:`set_globals` put in force (None = the config's own)."""
    return dict(_GLOBALS)


def reset_globals() -> None:
    """Back to every config's own settings (and ``$ADTOOL_BACKBONE_DIR`` as it was)."""
    _GLOBALS.clear()
    _GLOBALS.update(_UNSET)
    _restore_env()


def _restore_env() -> None:
    """``$ADTOOL_BACKBONE_DIR`` as it was before set_globals changed it."""
    if _ENV_BEFORE:
        before = _ENV_BEFORE.pop()
        if before is None:
            os.environ.pop(_ENV_BACKBONE, None)
        else:
            os.environ[_ENV_BACKBONE] = before


def _show(settings: Mapping) -> None:
    table = Table(title="adtool globals")
    table.add_column("setting")
    table.add_column("value")
    for key, value in settings.items():
        table.add_row(key, "(config's own)" if value is None else str(value))
    Console().print(table)


def _names(value: str | Iterable[str]) -> list[str]:
    if isinstance(value, str | os.PathLike):
        return [str(value)]
    names = [str(v) for v in value]
    if not names:
        raise ConfigError("an empty list of names; pass at least one")
    return names


def _scaled(size, factor: float):
    if isinstance(size, int | float):
        return int(round(size * factor))
    return type(size)(int(round(s * factor)) for s in size)


def _pipelines(cfg: Config) -> list[tuple[str, list]]:
    """(dotted key, steps) of every pipeline: the loaders' and top-level ``*pipeline``."""
    found = []
    for key in LOADERS:
        if cfg.get(key) and cfg[key].get("dataset") and cfg[key]["dataset"].get("pipeline"):
            found.append((f"{key}.dataset.pipeline", cfg[key]["dataset"]["pipeline"]))
    for key, value in cfg.items():
        if key.endswith("pipeline") and isinstance(value, list):
            found.append((key, value))
    return found


def _size_options(cfg: Config, img_size: int) -> dict:
    options = {}
    for key, steps in _pipelines(cfg):
        crops = [s for s in steps if isinstance(s, Mapping) and s.get("type") == "CenterCrop"]
        resizes = [s for s in steps if isinstance(s, Mapping) and s.get("type") == "Resize"]
        ratio = 1.0
        if crops and resizes:
            crop, resize = crops[0]["size"], resizes[0]["size"]
            crop = crop if isinstance(crop, int | float) else min(crop)
            resize = resize if isinstance(resize, int | float) else min(resize)
            ratio = resize / crop
        for i, step in enumerate(steps):
            if not isinstance(step, Mapping) or "size" not in step:
                continue
            if step.get("type") == "CenterCrop":
                options[f"{key}.{i}.size"] = _scaled(step["size"], img_size / _side(step["size"]))
            elif step.get("type") == "Resize":
                target = img_size * ratio
                options[f"{key}.{i}.size"] = _scaled(step["size"], target / _side(step["size"]))
    if "input_size" in cfg.model:
        options["model.input_size"] = img_size
    for name, value in cfg.model.items():
        if isinstance(value, Mapping) and "img_size" in value:
            options[f"model.{name}.img_size"] = img_size
    return options


def _side(size) -> float:
    """The shorter side a size sets (an int is both sides)."""
    return float(size if isinstance(size, int | float) else min(size))


def keyword_options(
    cfg: Config,
    *,
    num_epochs: int | None = None,
    batch_size: int | None = None,
    img_size: int | None = None,
    normalize: bool | None = None,
    n_train: int | None = None,
) -> dict:
    """The dotted config keys the original keywords set on ``cfg`` (see the module doc).

    Args:
        cfg: The merged config the keywords apply to.
        num_epochs: Epochs (iterations: epochs over the train set).
        batch_size: Train loader batch size.
        img_size: Model input size.
        normalize: Normalise inputs with mean/std (False: [0, 1] inputs).
        n_train: Train set size; needed for ``num_epochs`` on an iteration loop.

    Raises:
        ConfigError: for a non-positive number, or an iteration loop without ``n_train``.
    """
    for name, value in (("num_epochs", num_epochs), ("batch_size", batch_size)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    if img_size is not None and (not isinstance(img_size, int) or img_size < 8):
        raise ConfigError(f"img_size must be an integer of at least 8 pixels, got {img_size!r}")
    options: dict = {}
    if batch_size is not None:
        options["train_dataloader.batch_size"] = batch_size
    if num_epochs is not None:
        loop = dict(cfg.get("train_cfg") or {})
        if "max_epochs" in loop:
            options["train_cfg.max_epochs"] = num_epochs
        elif "max_iters" in loop:
            if n_train is None:
                raise ConfigError("num_epochs on an iteration loop needs the train set size")
            batch = batch_size or cfg.train_dataloader.get("batch_size", 1)
            options["train_cfg.max_iters"] = num_epochs * max(1, math.ceil(n_train / batch))
        else:
            stem = Path(cfg.filename).stem if cfg.filename else "this config"
            warnings.warn(
                f"num_epochs={num_epochs} ignored: {stem} fits once on the train set "
                f"({loop.get('type', 'no train loop')}), it has no epochs",
                stacklevel=3,
            )
    if img_size is not None:
        options.update(_size_options(cfg, img_size))
    if normalize is not None:
        pre = cfg.model.get("data_preprocessor") or {}
        if normalize:
            if pre.get("mean") is None or pre.get("std") is None:
                options["model.data_preprocessor.mean"] = IMAGENET_MEAN
                options["model.data_preprocessor.std"] = IMAGENET_STD
        else:
            options["model.data_preprocessor.mean"] = [0.0, 0.0, 0.0]
            options["model.data_preprocessor.std"] = [255.0, 255.0, 255.0]
    return options


def global_options(cfg: Config) -> dict:
    """The dotted keys :func:`set_globals` settings put on ``cfg`` (none before a call)."""
    options: dict = {}
    if _GLOBALS["seed"] is not None:
        options["randomness.seed"] = _GLOBALS["seed"]
    for key in LOADERS:
        if not cfg.get(key):
            continue
        workers = _GLOBALS["num_workers"]
        if workers is not None:
            options[f"{key}.num_workers"] = workers
        else:
            workers = cfg[key].get("num_workers", 0)
        if _GLOBALS["pin_memory"] is not None:
            # Pinned memory only speeds up copies to a GPU; without one torch warns per loader.
            options[f"{key}.pin_memory"] = _GLOBALS["pin_memory"] and torch.cuda.is_available()
        if _GLOBALS["persistent_workers"] is not None or _GLOBALS["num_workers"] is not None:
            wanted = _GLOBALS["persistent_workers"]
            if wanted is None:
                wanted = cfg[key].get("persistent_workers", False)
            # torch refuses persistent workers without workers
            options[f"{key}.persistent_workers"] = bool(wanted) and workers > 0
    return options


def _data(dataset: str, data_root) -> tuple[str | None, str | None]:
    """(preset or None for layout recognition, data root) for a dataset name."""
    root = _GLOBALS["dataset_dir"]
    if dataset in presets():
        if data_root is None and root is not None:
            data_root = str(Path(root) / dataset)
        return dataset, None if data_root is None else str(data_root)
    # A custom dataset: its folder, in the Folder layout (or MVTec's when found there).
    if data_root is None:
        data_root = Path(root if root is not None else "data") / dataset
        if not Path(data_root).is_dir():
            raise DataError(
                f"dataset '{dataset}' is neither a preset ({', '.join(presets())}) nor a "
                f"folder: {data_root} does not exist; pass data_root= or set_globals("
                "dataset_dir=...)"
            )
    return None, str(data_root)


def _datasets(dataset: str | Iterable[str]) -> list[str]:
    if dataset != "all":
        return _names(dataset)
    root = Path(_GLOBALS["dataset_dir"] or "data")
    found = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not found:
        raise DataError(f"dataset 'all': no dataset folder under {root}; set_globals(dataset_dir=)")
    return found


def _prepared(model, preset, data_root, category, cfg_options) -> tuple[Config, str | None]:
    """The config as :func:`adtool.apis.core.run` will see it, and the category argument."""
    cfg = load_config(model, cfg_options)
    if preset is not None:
        use_dataset(cfg, preset)
    elif data_root is not None:
        data_root, category = choose_dataset(cfg, data_root, category, on_message=lambda m: m)
    set_data(cfg, data_root=data_root)
    return cfg, category


def _train_size(cfg: Config, category: str | None) -> int:
    register_all_modules()
    spec = dict(cfg.train_dataloader["dataset"])
    if category is not None:
        spec["category"] = category
    return len(DATASETS.build(spec))


def plan(
    dataset: str,
    category: str | None,
    model: str,
    *,
    num_epochs: int | None = None,
    batch_size: int | None = None,
    img_size: int | None = None,
    normalize: bool | None = None,
    data_root: str | os.PathLike | None = None,
    cfg_options: dict | None = None,
) -> list[dict]:
    """What :func:`train` runs for one dataset and model: one ``run`` keyword dict per
    category, with the merged ``cfg_options`` (read it to see a keyword's effect)."""
    preset, root = _data(dataset, data_root)
    user = dict(cfg_options or {})
    cfg, cat_arg = _prepared(model, preset, root, category, user)
    categories = resolve_categories(cfg, cat_arg)
    runs = []
    for cat in categories:
        n_train = None
        if num_epochs is not None and "max_iters" in (cfg.get("train_cfg") or {}):
            n_train = _train_size(cfg, cat)
        options = {
            **global_options(cfg),
            **keyword_options(
                cfg,
                num_epochs=num_epochs,
                batch_size=batch_size,
                img_size=img_size,
                normalize=normalize,
                n_train=n_train,
            ),
            **user,  # the caller's own keys win
        }
        runs.append(
            {
                "config": model,
                "dataset": preset,
                "data_root": root,
                "category": cat,
                "cfg_options": options,
                "stem": Path(cfg.filename).stem,
            }
        )
    return runs


def merged_config(dataset: str, category: str | None, model: str, **keywords) -> Config:
    """The config :func:`train` runs for the first category (the keywords applied)."""
    first = plan(dataset, category, model, **keywords)[0]
    cfg, _ = _prepared(
        first["config"],
        first["dataset"],
        first["data_root"],
        first["category"],
        first["cfg_options"],
    )
    return cfg


def _join(category) -> str | None:
    if category is None or isinstance(category, str):
        return category
    return ",".join(_names(category))


def train(
    dataset: str | Iterable[str],
    category: str | Iterable[str] | None,
    model: str | Iterable[str],
    *,
    num_epochs: int | None = None,
    batch_size: int | None = None,
    img_size: int | None = None,
    normalize: bool | None = None,
    data_root: str | os.PathLike | None = None,
    work_dir: str | os.PathLike | None = None,
    cfg_options: dict | None = None,
    **overrides,
) -> dict | list[dict]:
    """Train and test each model on each (dataset, category).

    Returns:
        The results dict for one dataset, one model and one category name; else a list
        with one results dict per (dataset, model, category).

    Args:
        dataset: A preset (``'mvtec'``, ``'sample'``, ...), a folder name under
            ``dataset_dir`` (Folder layout, or MVTec's when found), a list, or ``'all'``
            (every folder under ``dataset_dir``).
        category: A name, a list, ``'all'`` or None (the config's).
        model: A config stem, a model folder name, an original name
            (``'fastflow-cait'``) or a list of them.
        num_epochs, batch_size, img_size, normalize: See the module doc.
        data_root: The dataset's folder (one dataset only).
        work_dir: Output root; default ``<output_dir or work_dirs>/<config stem>``, plus
            ``/<dataset>`` when several datasets are given.
        cfg_options: Dotted overrides; they win over the keywords.
        **overrides: The same with ``__`` for dots: ``model__head__coreset_ratio=0.01``.
    """
    datasets = _datasets(dataset)
    if data_root is not None and len(datasets) > 1:
        raise ConfigError("data_root names one dataset's folder; pass one dataset with it")
    user = dict(cfg_options or {})
    user.update({k.replace("__", "."): v for k, v in overrides.items()})
    results = []
    for name in datasets:
        for one_model in _names(model):
            for item in plan(
                name,
                _join(category),
                one_model,
                num_epochs=num_epochs,
                batch_size=batch_size,
                img_size=img_size,
                normalize=normalize,
                data_root=data_root,
                cfg_options=user,
            ):
                root = Path(work_dir) if work_dir is not None else None
                if root is None:
                    root = Path(_GLOBALS["output_dir"] or "work_dirs") / item["stem"]
                elif len(_names(model)) > 1:
                    root = root / item["stem"]
                if len(datasets) > 1:
                    root = root / name
                results += run(
                    item["config"],
                    dataset=item["dataset"],
                    data_root=item["data_root"],
                    category=item["category"],
                    work_dir=root,
                    cfg_options=item["cfg_options"],
                )
    single = (
        isinstance(dataset, str)
        and dataset != "all"
        and isinstance(model, str)
        and (category is None or (isinstance(category, str) and category != "all"))
        and (category is None or "," not in category)
    )
    return results[0] if single and len(results) == 1 else results


def train_models(
    models: str | Iterable[str] | None = None,
    dataset: str | Iterable[str] | None = None,
    categories: str | Iterable[str] | None = "all",
    *,
    dataset_type: str | Iterable[str] | None = None,
    work_dir: str | os.PathLike | None = None,
    **keywords,
) -> list[dict]:
    """Train and test several models on several categories; one results dict per pair.

    ``train_models(["padim", "stfpm"], "mvtec", categories=[...])`` and the original
    ``train_models(dataset_type="mvtec", categories=[...], models=[...])`` are the same
    call; the other keywords are :func:`train`'s. With ``work_dir``, each model writes
    into ``<work_dir>/<model>``.
    """
    if dataset is not None and dataset_type is not None and dataset != dataset_type:
        raise ConfigError("pass the dataset once: dataset= or dataset_type=, not both")
    dataset = dataset if dataset is not None else dataset_type
    if dataset is None or models is None:
        raise ConfigError("train_models needs models=[...] and dataset_type= (or dataset=)")
    results = []
    for model in _names(models):
        out = None if work_dir is None else Path(work_dir) / model
        found = train(dataset, _join(categories) or "all", model, work_dir=out, **keywords)
        results += found if isinstance(found, list) else [found]
    return results
