"""Named configs: find configs by path, stem or short model name."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from adtool.errors import ConfigError

# The paper's own setting is each model's default config (the name a short model name
# such as "padim" resolves to). A model folder missing here resolves to its only config.
DEFAULT_CONFIGS = {
    "patchcore": "patchcore_wrn50_mvtec",
    "padim": "padim_wrn50_mvtec",
    "dfm": "dfm_r50_mvtec",
    "stfpm": "stfpm_r18_mvtec",
    "fastflow": "fastflow_wrn50_mvtec",
    "reverse_distillation": "reverse_distillation_wrn50_mvtec",
    "vit": "vit_base_imagefolder",
    "dfine": "dfine_hgnetv2-s_coco",
    "eomt": "eomt_vit-l_ade",
    "swin2sr": "swin2sr_x2_div2k",
}

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


def config_root() -> Path:
    """The configs/ folder: ``$ADTOOL_CONFIG_DIR`` or the one beside the package."""
    env = os.environ.get("ADTOOL_CONFIG_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "configs"


def list_configs() -> list[Path]:
    """Every model config (not ``_base_``), sorted by model folder then name."""
    root = config_root()
    return sorted(p for p in root.glob("*/*.py") if p.parent.name != "_base_")


def default_config(model: str) -> Path | None:
    """The default config of model folder ``configs/<model>/``, or None without one.

    :data:`DEFAULT_CONFIGS` names it; a folder not listed there resolves to its only
    config.

    Raises:
        ConfigError: when an unlisted folder has several configs.
    """
    root = config_root()
    stem = DEFAULT_CONFIGS.get(model)
    if stem is not None:
        matches = sorted(root.glob(f"*/{stem}.py"))
        if matches:
            return matches[0]
    folder = root / model
    candidates = sorted(folder.glob("*.py"))
    if not candidates:
        return None
    if len(candidates) == 1:
        return candidates[0]
    names = ", ".join(p.stem for p in candidates)
    raise ConfigError(
        f"model '{model}' has several configs ({names}); name one, e.g. {candidates[0].stem}"
    )


def resolve_config(name: str | os.PathLike) -> Path:
    """A config path from a path, a config stem or a short model name.

    ``'configs/patchcore/patchcore_r18_mvtec.py'``, ``'patchcore_r18_mvtec'`` and
    ``'patchcore'`` (the model's default config, see :func:`default_config`) all resolve.
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
    if "/" not in key and "\\" not in key:
        found = default_config(key)
        if found is not None:
            return found
    models = {p.parent.name for p in by_stem.values()}
    choices = sorted(set(by_stem) | set(DEFAULT_CONFIGS) | models)
    close = difflib.get_close_matches(key, choices, n=1)
    hint = f"did you mean '{close[0]}'?" if close else "`adtool list-configs` lists them"
    raise ConfigError(f"no config named '{name}'; {hint}")


def dataset_name(dataset_type: str) -> str:
    """Short dataset name for results (``'MVTecAD'`` -> ``'mvtec'``)."""
    return DATASET_NAMES.get(dataset_type, dataset_type.lower())
