"""Named configs: find configs by path, stem or short model name; the bottom apis layer.

Nothing here imports another ``adtool.apis`` module. It holds what the other layers look
up by name: where the configs live (:func:`config_root`), each model folder's default
config (:func:`default_config`), the short dataset names of results files
(:func:`dataset_name`) and the tasks a config may declare (:data:`TASKS`).
"""

from __future__ import annotations

import ast
import difflib
import os
from functools import lru_cache
from pathlib import Path

from adtool.errors import ConfigError

# The marker a model folder's default config carries: a top-level ``default = True`` line.
# It is read from the file's own source (not the merged config), so a config that inherits
# from the default one is not a default itself.
DEFAULT_MARKER = "default"

# The marker for the original framework's names of a config: a top-level
# ``alias = ["fastflow-cait"]`` line, read from the file's own source like the default marker
# (a config inheriting from an aliased one does not take its names).
ALIAS_MARKER = "alias"

# Every task a config's top-level ``task`` may name; ``'anomaly'`` when unset.
TASKS = ("anomaly", "classification", "detection", "segmentation", "super_resolution")

# Dataset class -> the short name results files and tables use.
DATASET_NAMES = {
    "MVTecAD": "mvtec",
    "VisA": "visa",
    "BTAD": "btad",
    "Folder": "folder",
    "SampleDataset": "sample",
    "CocoDetection": "coco",
    "SegMasks": "seg_masks",
    "ImageFolderCls": "imagefolder",
    "SRPairs": "sr_pairs",
}


def _packaged_configs() -> Path:
    # `pip install .` ships configs/ as package data here (see pyproject.toml); in a
    # checkout the same path is a symlink to the top-level configs/ folder.
    return Path(__file__).resolve().parents[1] / ".mim" / "configs"


def config_root() -> Path:
    """The configs folder: ``$ADTOOL_CONFIG_DIR``, else the one installed with the package,
    else ``configs/`` beside the package (a checkout)."""
    env = os.environ.get("ADTOOL_CONFIG_DIR")
    if env:
        return Path(env)
    packaged = _packaged_configs()
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "configs"


def list_configs() -> list[Path]:
    """Every model config (not ``_base_``), sorted by model folder then name."""
    root = config_root()
    return sorted(p for p in root.glob("*/*.py") if p.parent.name != "_base_")


@lru_cache(maxsize=512)
def _marked_default(path: Path, mtime: float) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if DEFAULT_MARKER in names and node.value.value is True:
                return True
    return False


@lru_cache(maxsize=512)
def _marked_aliases(path: Path, mtime: float) -> tuple[str, ...]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        names = [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
        if isinstance(node, ast.Assign) and ALIAS_MARKER in names:
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                value = None
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise ConfigError(
                    f"{path}: `alias` must be a list of names, e.g. alias = ['padim']"
                )
            return tuple(v.lower() for v in value)
    return ()


def config_aliases(path: str | os.PathLike) -> tuple[str, ...]:
    """The original framework's names the config file itself declares (``alias = [...]``)."""
    path = Path(path)
    return _marked_aliases(path, path.stat().st_mtime)


def alias_index() -> dict[str, Path]:
    """Every declared alias -> its config.

    Raises:
        ConfigError: when two configs declare the same alias, or an alias is a config stem.
    """
    found: dict[str, Path] = {}
    configs = list_configs()
    stems = {p.stem for p in configs}
    for path in configs:
        for alias in config_aliases(path):
            if alias in found or alias in stems:
                other = found.get(alias, alias)
                raise ConfigError(
                    f"alias '{alias}' of {path.name} is taken by {getattr(other, 'name', other)};"
                    " keep each alias in one config"
                )
            found[alias] = path
    return found


def is_default_config(path: str | os.PathLike) -> bool:
    """True when the config file itself sets ``default = True`` at top level."""
    path = Path(path)
    return _marked_default(path, path.stat().st_mtime)


def default_config(model: str) -> Path | None:
    """The default config of model folder ``configs/<model>/``, or None without one.

    The config marked ``default = True`` (the paper's own setting); a folder without a
    marked config resolves to its only config.

    Raises:
        ConfigError: when several configs are marked, or none is and there are several.
    """
    folder = config_root() / model
    candidates = sorted(folder.glob("*.py")) if folder.is_dir() else []
    if not candidates:
        return None
    marked = [p for p in candidates if is_default_config(p)]
    if len(marked) == 1:
        return marked[0]
    if len(marked) > 1:
        names = ", ".join(p.name for p in marked)
        raise ConfigError(
            f"model '{model}' has several configs marked `default = True` ({names}); keep "
            "the marker in one"
        )
    if len(candidates) == 1:
        return candidates[0]
    names = ", ".join(p.stem for p in candidates)
    raise ConfigError(
        f"model '{model}' has several configs ({names}); name one, e.g. {candidates[0].stem}"
    )


def resolve_config(name: str | os.PathLike) -> Path:
    """A config path from a path, a config stem or a short model name.

    ``'configs/patchcore/patchcore_r18_mvtec.py'``, ``'patchcore_r18_mvtec'`` and
    ``'patchcore'`` (the model's default config, see :func:`default_config`) all resolve,
    and so do the original framework's names (``'fastflow-cait'``, see :func:`alias_index`).
    """
    path = Path(name)
    if path.suffix == ".py":
        if path.is_file():
            return path
        raise ConfigError(f"config file {path} not found; `adtool list-configs` lists them")
    key = str(name).lower()
    by_stem = {p.stem: p for p in list_configs()}
    if key in by_stem:
        return by_stem[key]
    if "/" not in key and "\\" not in key and key not in ("", ".", ".."):
        found = default_config(key)
        if found is not None:
            return found
    aliases = alias_index()
    if key in aliases:
        return aliases[key]
    models = {p.parent.name for p in by_stem.values()}
    choices = sorted(set(by_stem) | models | set(aliases))
    close = difflib.get_close_matches(key, choices, n=1)
    hint = f"did you mean '{close[0]}'?" if close else "`adtool list-configs` lists them"
    raise ConfigError(f"no config named '{name}'; {hint}")


def dataset_name(dataset_type) -> str | None:
    """Short dataset name for results (``'MVTecAD'`` -> ``'mvtec'``); a class or a name."""
    if dataset_type is None:
        return None
    if not isinstance(dataset_type, str):
        dataset_type = getattr(dataset_type, "__name__", str(dataset_type))
    return DATASET_NAMES.get(dataset_type, dataset_type.lower())


def task_of(cfg) -> str:
    """The config's ``task`` (``'anomaly'`` when unset), checked against :data:`TASKS`.

    Raises:
        ConfigError: for an unknown task.
    """
    task = cfg.get("task", "anomaly")
    if task not in TASKS:
        raise ConfigError(f"task '{task}' is not known; set task to one of {', '.join(TASKS)}")
    return task


def one_config_per_method() -> dict[str, str]:
    """Method folder -> the one anomaly config that stands for it in per-method checks and
    benchmarks (export parity, export speed): its ``*_sample`` config, else an
    ``*effnetlite0*`` one (the weights that ship here), else the first by name."""
    from mmengine.config import Config

    chosen: dict[str, tuple[int, str]] = {}
    for path in list_configs():
        if Config.fromfile(str(path)).get("task", "anomaly") != "anomaly":
            continue
        rank = (0 if "sample" in path.stem else 1 if "effnetlite0" in path.stem else 2, path.stem)
        best = chosen.get(path.parent.name)
        if best is None or rank < best:
            chosen[path.parent.name] = rank
    return {method: stem for method, (_, stem) in sorted(chosen.items())}
