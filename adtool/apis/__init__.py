"""Python API: ``train("mvtec", "bottle", "patchcore")`` and friends."""

from __future__ import annotations

import os

from adtool.apis.config_index import list_configs, resolve_config
from adtool.apis.core import load_config, run, run_category


def _overrides(cfg_options: dict | None, overrides: dict) -> dict:
    """Merge ``cfg_options`` with keyword overrides, ``a__b=1`` meaning ``a.b=1``."""
    merged = dict(cfg_options or {})
    merged.update({k.replace("__", "."): v for k, v in overrides.items()})
    return merged


def train(
    dataset: str,
    category: str,
    model: str,
    *,
    data_root: str | os.PathLike | None = None,
    work_dir: str | os.PathLike | None = None,
    cfg_options: dict | None = None,
    **overrides,
) -> dict:
    """Train and test one model on one category; returns its results dict.

    Args:
        dataset: ``'mvtec'``, ``'visa'``, ``'btad'``, ``'folder'`` or ``'sample'``.
        category: Category name.
        model: Short model name (``'patchcore'`` = its paper config) or a config
            stem/path (``'patchcore_effnetlite0_mvtec'``).
        data_root: Dataset root; defaults to the dataset config's.
        work_dir: Output root. Defaults to ``work_dirs/<config stem>``.
        cfg_options: Dotted overrides, e.g. ``{'model.head.coreset_ratio': 0.01}``.
        **overrides: The same with ``__`` for dots: ``model__head__coreset_ratio=0.01``.
    """
    return run(
        model,
        dataset=dataset,
        category=category,
        data_root=data_root,
        work_dir=work_dir,
        cfg_options=_overrides(cfg_options, overrides),
    )[0]


def train_models(
    models: list[str],
    dataset: str,
    categories: str | list[str] = "all",
    *,
    data_root: str | os.PathLike | None = None,
    work_dir: str | os.PathLike | None = None,
    cfg_options: dict | None = None,
    **overrides,
) -> list[dict]:
    """Train and test several models on several categories; one results dict per pair."""
    if isinstance(categories, (list, tuple)):
        categories = ",".join(categories)
    results = []
    for model in models:
        model_dir = None if work_dir is None else os.path.join(str(work_dir), str(model))
        results += run(
            model,
            dataset=dataset,
            category=categories,
            data_root=data_root,
            work_dir=model_dir,
            cfg_options=_overrides(cfg_options, overrides),
        )
    return results


def test(
    config: str,
    checkpoint: str,
    *,
    category: str | None = None,
    data_root: str | os.PathLike | None = None,
    work_dir: str | os.PathLike | None = None,
    cfg_options: dict | None = None,
    dataset: str | None = None,
) -> dict:
    """Test a saved model and write the results files; returns its results dict.

    ``dataset`` names the preset (``'folder'``, ...); without it the layout under
    ``data_root`` picks one.
    """
    return run(
        config,
        checkpoint=checkpoint,
        dataset=dataset,
        category=category,
        data_root=data_root,
        work_dir=work_dir,
        cfg_options=cfg_options,
    )[0]


__all__ = [
    "list_configs",
    "load_config",
    "resolve_config",
    "run",
    "run_category",
    "test",
    "train",
    "train_models",
]
