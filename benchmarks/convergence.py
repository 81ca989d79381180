"""Image AUROC after every epoch of a trained method (epochs-to-quality), one line per epoch.

Runs each config on each category for ``--epochs`` epochs with validation after every
epoch and no early stopping, then prints the validation image AUROC per epoch (read from
mmengine's ``vis_data/scalars.json``) and the seconds per epoch, validation included::

    OMP_NUM_THREADS=1 python benchmarks/convergence.py --data-root data/sample \\
        --configs stfpm_effnetlite0_sample --categories disk twill washer --epochs 30

``--cfg-options`` are applied to every run (e.g. ``model.loss.reduction=mean`` for the
earlier loss). The table goes to stdout and, with ``--out``, to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from adtool.apis import load_config, run_category

LOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")


def epoch_aurocs(work_dir: Path) -> list[float]:
    """Validation image AUROC per epoch from the run's ``scalars.json``."""
    files = sorted(work_dir.glob("**/vis_data/scalars.json"))
    out: dict[int, float] = {}
    for line in files[-1].read_text().splitlines() if files else []:
        rec = json.loads(line)
        if "image_AUROC" in rec:
            out[int(rec["step"])] = float(rec["image_AUROC"])
    return [out[k] for k in sorted(out)]


def run_one(config: str, category: str, data_root: str, epochs: int, options: dict, work: Path):
    overrides = {f"{loader}.dataset.data_root": data_root for loader in LOADERS}
    overrides.update(
        {"train_cfg.max_epochs": epochs, "train_cfg.val_interval": 1, "custom_hooks": []}
    )
    overrides.update(options)
    cfg = load_config(config, overrides)
    start = time.perf_counter()
    result = run_category(cfg, category, work)
    total = time.perf_counter() - start
    aurocs = epoch_aurocs(work)
    return {
        "config": config,
        "category": category,
        "epochs": epochs,
        "auroc": aurocs,
        "train_s": result["timing"]["train_s"],
        "s_per_epoch": result["timing"]["train_s"] / epochs,
        "total_s": total,
        "final_image_AUROC": result["image"]["AUROC"],
    }


def parse_options(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, value = item.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--configs", nargs="+", default=["stfpm_effnetlite0_sample"])
    parser.add_argument("--categories", nargs="+", default=["disk", "twill", "washer"])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--work-dir", default="work_dirs/convergence")
    parser.add_argument("--cfg-options", nargs="*", default=[])
    parser.add_argument("--out", default=None, help="JSON file for the rows")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    options = parse_options(args.cfg_options)
    rows = []
    for config in args.configs:
        for category in args.categories:
            work = Path(args.work_dir) / config / category
            row = run_one(config, category, args.data_root, args.epochs, options, work)
            rows.append(row)
            shown = " ".join(f"{a:.3f}" for a in row["auroc"])
            print(
                f"{config} {category}: {row['s_per_epoch']:.1f} s/epoch, AUROC per epoch {shown}",
                flush=True,
            )
            if args.out:
                Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
