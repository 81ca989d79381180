"""Named configs: find configs by path, stem or short model name."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from adtool.errors import ConfigError

# The paper's own setting is each model's default config.
DEFAULT_CONFIGS = {
    "patchcore": "patchcore_wrn50_mvtec",
}

DATASET_NAMES = {
    "MVTecAD": "mvtec",
    "VisA": "visa",
    "BTAD": "btad",
    "Folder": "folder",
    "SampleDataset": "sample",
}


def config_root() -> Path:
    """The configs/ folder: ``$ADTOOL_CONFIG_DIR`` or the one beside the package."""
    env = os.environ.get("ADTOOL_CONFIG_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "configs"


def list_configs() -> list[Path]:
    """Every model config (not ``_base_``), sorted by model folder then name."""
    root = config_root()
    return sorted(p for p in root.glob("*/*.py") if p.parent.name != "_base_")


def resolve_config(name: str | os.PathLike) -> Path:
    """A config path from a path, a config stem or a short model name.

    ``'configs/patchcore/patchcore_r18_mvtec.py'``, ``'patchcore_r18_mvtec'`` and
    ``'patchcore'`` (the model's default config) all resolve.
    """
    path = Path(name)
    if path.suffix == ".py":
        if path.is_file():
            return path
        raise ConfigError(f"config file {path} not found; `adtool list-configs` lists them")
    key = str(name).lower()
    stem = DEFAULT_CONFIGS.get(key, key)
    by_stem = {p.stem: p for p in list_configs()}
    if stem in by_stem:
        return by_stem[stem]
    choices = sorted(set(by_stem) | set(DEFAULT_CONFIGS))
    close = difflib.get_close_matches(key, choices, n=1)
    hint = f"did you mean '{close[0]}'?" if close else "`adtool list-configs` lists them"
    raise ConfigError(f"no config named '{name}'; {hint}")


def dataset_name(dataset_type: str) -> str:
    """Short dataset name for results (``'MVTecAD'`` -> ``'mvtec'``)."""
    return DATASET_NAMES.get(dataset_type, dataset_type.lower())
