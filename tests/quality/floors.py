"""The run-and-report body every quality floor shares (``from floors import run_floor``).

A floor test builds a config on the session's sample data, runs one category through
``adtool.apis.run_category`` and asserts its AUROCs against numbers measured here. This
module does the first two and formats the one line each test prints (``pytest -s``), so a
floor file holds only its measurements, its floors and its own extra checks.
"""

from __future__ import annotations

import time
from pathlib import Path

from mmengine.config import Config

from adtool.apis import load_config, run_category

LOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")


def sample_config(config: str, sample_root: str | Path, overrides: dict | None = None) -> Config:
    """``config`` with every dataloader it has reading ``sample_root``, plus ``overrides``."""
    present = [loader for loader in LOADERS if load_config(config).get(loader)]
    options = {f"{loader}.dataset.data_root": str(sample_root) for loader in present}
    return load_config(config, {**options, **(overrides or {})})


def summary_line(config: str, category: str, result: dict, total_s: float) -> str:
    """``<config> <category>: image AUROC .., pixel AUROC .., AUPRO .., epochs .., train .. s``."""
    parts = [f"image AUROC {result['image']['AUROC']:.4f}"]
    pixel = result.get("pixel") or {}
    if pixel.get("AUROC") is not None:
        parts.append(f"pixel AUROC {pixel['AUROC']:.4f}")
    if pixel.get("AUPRO") is not None:
        parts.append(f"AUPRO {pixel['AUPRO']:.4f}")
    train = result.get("train") or {}
    if "epochs" in train:
        parts.append(f"epochs {train['epochs']}")
    timing = result["timing"]
    parts.append(f"train {timing['train_s']:.1f} s")
    if timing.get("test_images_per_s"):
        parts.append(f"test {timing['test_images_per_s']:.1f} img/s")
    parts.append(f"total {total_s:.1f} s")
    info = result.get("model_info")
    tail = f"; {info}" if info else ""
    return f"{config} {category}: " + ", ".join(parts) + tail


def run_floor(
    config: str,
    category: str,
    sample_root: str | Path,
    work_dir: str | Path,
    overrides: dict | None = None,
) -> tuple[dict, str, Config]:
    """Run ``config`` on one sample category; returns (results, printed summary, config)."""
    cfg = sample_config(config, sample_root, overrides)
    start = time.perf_counter()
    result = run_category(cfg, category, work_dir)
    summary = summary_line(config, category, result, time.perf_counter() - start)
    print(summary)
    return result, summary, cfg


def assert_floors(result: dict, summary: str, image_floor: float, pixel_floor: float | None):
    """Image AUROC (and pixel AUROC when the method has a map) at or above the floors."""
    assert result["image"]["AUROC"] >= image_floor, summary
    if pixel_floor is not None:
        assert result["pixel"]["AUROC"] >= pixel_floor, summary
