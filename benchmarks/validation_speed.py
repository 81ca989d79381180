"""Seconds of one per-epoch validation: the full report vs only the monitored metrics.

Builds each config's runner on one category, then times ``runner.val_loop.run()`` with
``val_cfg.metrics='all'`` (every validation writes the full report: AUPRO, thresholds,
per-defect table, maps kept) and ``'monitored'`` (the default: image AUROC only, no maps),
interleaved ``--repeats`` times so that the machine's load hits both alike::

    OMP_NUM_THREADS=1 python benchmarks/validation_speed.py --data-root data/sample \\
        --configs stfpm_effnetlite0_sample fastflow_effnetlite0_sample \\
        reverse_distillation_effnetlite0_sample --category disk
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from adtool.apis import load_config
from adtool.apis.core import build_runner

LOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")


def val_runner(config: str, data_root: str, category: str, metrics: str, work_dir: str):
    overrides = {f"{loader}.dataset.data_root": data_root for loader in LOADERS}
    overrides["val_cfg.metrics"] = metrics
    runner = build_runner(load_config(config, overrides), category, work_dir)
    runner.call_hook("before_run")
    runner.call_hook("before_train")  # the checkpoint hook opens its folder here
    runner.model.eval()
    return runner


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--configs", nargs="+", default=["stfpm_effnetlite0_sample"])
    parser.add_argument("--category", default="disk")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print("| config | full report s | monitored only s | ratio | keys |")
    print("| --- | ---: | ---: | ---: | --- |")
    for config in args.configs:
        with tempfile.TemporaryDirectory() as tmp:
            runners = {
                m: val_runner(config, args.data_root, args.category, m, f"{tmp}/{m}")
                for m in ("all", "monitored")
            }
            times: dict[str, list[float]] = {m: [] for m in runners}
            metrics = {}
            for _ in range(args.repeats):
                for mode, runner in runners.items():
                    start = time.perf_counter()
                    metrics[mode] = runner.val_loop.run()
                    times[mode].append(time.perf_counter() - start)
            full, cheap = (statistics.median(times[m]) for m in ("all", "monitored"))
            same = all(metrics["all"][k] == v for k, v in metrics["monitored"].items())
            keys = ", ".join(metrics["monitored"]) + (" (equal)" if same else " (DIFFER)")
            print(f"| {config} | {full:.2f} | {cheap:.2f} | {full / cheap:.1f}x | {keys} |")


if __name__ == "__main__":
    main()
