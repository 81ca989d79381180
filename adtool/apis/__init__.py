"""Python API: ``train("mvtec", "bottle", "patchcore")`` and friends."""

from __future__ import annotations

import os

from adtool.apis.config_index import list_configs, resolve_config
from adtool.apis.core import load_config, run, run_category
from adtool.apis.simple import (
    get_globals,
    merged_config,
    reset_globals,
    set_globals,
    train,
    train_models,
)


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
    "get_globals",
    "merged_config",
    "reset_globals",
    "set_globals",
    "list_configs",
    "load_config",
    "resolve_config",
    "run",
    "run_category",
    "test",
    "train",
    "train_models",
]
