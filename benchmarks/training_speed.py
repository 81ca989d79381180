"""Seconds per training epoch of the trained methods, with the training caches on and off.

    python benchmarks/training_speed.py [--methods stfpm fastflow reverse_distillation ...]
        [--epochs 3] [--threads 1] [--category disk] [--data-root data/sample]
        [--image-size N] [--json out.json]

Per method, its ``<method>_effnetlite0_sample`` config (the bundled ImageNet
EfficientNet-Lite0 weights) trains for ``--epochs`` epochs on the category's sample
training images, validating as the config does (``val_interval`` capped at the epochs),
twice: "off", what every epoch cost before issue 22 (``feature_cache.enabled=False,
decode_cache.enabled=False, val_cfg.metrics='all'``: no training or validation caches, the
full report at every validation, every ``TimmBackbone`` with
``train_memory_format='contiguous'``), and "on" (the defaults: caches ``'auto'``, the
monitored metric only, trained backbones channels-last). The two runs of a method
run back to back, so they see the same machine load (``--repeats R``: R runs of each,
alternating the order, the fastest by seconds per epoch shown). A hook splits every epoch into

* ``data``: loading the batches (decoding, resizing, collating),
* ``frozen``: the frozen part's forward (``model.frozen_features``; 0 once cached),
* ``trained``: the rest of each step: the trained parts' forward, backward, optimiser,
* ``val``: validation, per validated epoch,

and reports the first epoch, the mean of the later ones, the seconds per epoch with
validation included (all epochs' data + steps + validation / epochs; the runner's setup,
weights loading and hooks excluded), training images per second in the later epochs,
and the last validation's image AUROC (the same with the caches on and off; a
channels-last trained backbone, STFPM's student, makes it equal only up to float
rounding). Checkpoint saving is off (it is not what the caches change). Generate the data first:
``python tools/make_sample_data.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from mmengine.hooks import Hook

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adtool.apis import load_config  # noqa: E402
from adtool.apis.core import set_data  # noqa: E402
from adtool.engine import AnomalyRunner  # noqa: E402
from adtool.registry import HOOKS  # noqa: E402

METHODS = ("stfpm", "fastflow", "reverse_distillation", "cflow", "csflow", "uflow", "uninet")
#: Every epoch as before issue 22: no training or validation caches, the full report at
#: every validation, contiguous trained backbones (``_contiguous``).
OFF = {"feature_cache.enabled": False, "decode_cache.enabled": False, "val_cfg.metrics": "all"}


def _contiguous(node) -> None:
    """Sets ``train_memory_format='contiguous'`` on every TimmBackbone of a model config."""
    if isinstance(node, dict):
        if node.get("type") == "TimmBackbone":
            node["train_memory_format"] = "contiguous"
        for value in node.values():
            _contiguous(value)
    elif isinstance(node, list | tuple):
        for value in node:
            _contiguous(value)


@HOOKS.register_module(force=True)
class EpochTimer(Hook):
    """Splits each epoch's wall time into data, frozen forward, trained step and validation."""

    priority = "VERY_HIGH"

    def __init__(self) -> None:
        self.epochs: list[dict] = []
        self.auroc = None
        self._mark = 0.0
        self._in_step = False

    def before_train(self, runner) -> None:
        model = runner.model.module if hasattr(runner.model, "module") else runner.model
        frozen = type(model).frozen_features.__get__(model)

        def timed(inputs):
            start = time.perf_counter()
            try:
                return frozen(inputs)
            finally:
                if self._in_step:  # not validation's calls (RD and UniNet make some)
                    self.epochs[-1]["frozen"] += time.perf_counter() - start

        model.frozen_features = timed  # the instance attribute shadows the method

    def before_train_epoch(self, runner) -> None:
        self.epochs.append(dict(data=0.0, frozen=0.0, step=0.0, val=0.0, validated=False))
        self._mark = time.perf_counter()

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        now = time.perf_counter()
        self.epochs[-1]["data"] += now - self._mark
        self._mark = now
        self._in_step = True

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        now = time.perf_counter()
        self.epochs[-1]["step"] += now - self._mark
        self._mark = now
        self._in_step = False

    def before_val_epoch(self, runner) -> None:
        self._mark = time.perf_counter()

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.epochs[-1]["val"] += time.perf_counter() - self._mark
        self.epochs[-1]["validated"] = True
        self.auroc = (metrics or {}).get("image_AUROC", self.auroc)


def run(method: str, args, options: dict) -> dict:
    cfg = load_config(f"{method}_effnetlite0_sample", options)
    if options is OFF:
        _contiguous(cfg.model)
    set_data(cfg, args.data_root, args.category)
    if args.image_size:
        for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
            for step in cfg[key]["dataset"]["pipeline"]:
                if step["type"] == "Resize":
                    step["size"] = args.image_size
        if "input_size" in cfg.model:
            cfg.model.input_size = args.image_size
    interval = min(cfg.train_cfg.get("val_interval", 1), args.epochs)
    cfg.train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=args.epochs, val_interval=interval)
    cfg.custom_hooks = [dict(type="EpochTimer")]
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=-1, save_last=False)
    cfg.default_hooks.logger = dict(type="LoggerHook", interval=1000)
    with tempfile.TemporaryDirectory(prefix="training_speed_") as work:
        cfg.work_dir = work
        runner = AnomalyRunner.from_cfg(cfg)
        start = time.perf_counter()
        runner.train()
        total = time.perf_counter() - start
        timer = next(h for h in runner.hooks if isinstance(h, EpochTimer))
        n_train = len(runner.train_dataloader.dataset)
    epochs = timer.epochs
    for e in epochs:
        e["trained"] = e["step"] - e["frozen"]
    later = epochs[1:] or epochs

    def mean(rows, key):
        return sum(r[key] for r in rows) / len(rows)

    validated = [e for e in epochs if e["validated"]]
    train_later = mean(later, "data") + mean(later, "step")
    epoch_total = sum(e["data"] + e["step"] + e["val"] for e in epochs)
    return dict(
        method=method,
        n_train=n_train,
        first={k: epochs[0][k] for k in ("data", "frozen", "trained")},
        later={k: mean(later, k) for k in ("data", "frozen", "trained")},
        val=mean(validated, "val") if validated else 0.0,
        n_val=len(validated),
        per_epoch=epoch_total / len(epochs),
        setup=total - epoch_total,
        images_per_s=n_train / train_later,
        auroc=timer.auroc,
    )


def row(name: str, r: dict) -> str:
    f, lt = r["first"], r["later"]
    return (
        f"| {name} | {f['data']:.2f} / {f['frozen']:.2f} / {f['trained']:.2f} "
        f"| {lt['data']:.2f} / {lt['frozen']:.2f} / {lt['trained']:.2f} "
        f"| {r['val']:.2f} ({r['n_val']}) | {r['per_epoch']:.2f} | {r['images_per_s']:.1f} "
        f"| {r['auroc']:.4f} |"
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--category", default="disk")
    parser.add_argument("--data-root", default="data/sample")
    parser.add_argument("--image-size", type=int, default=None, help="default: the config's")
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs per variant; the fastest is shown"
    )
    parser.add_argument("--json", default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be >= 2: the caches act from the second epoch")
    if not (Path(args.data_root) / args.category / "train").is_dir():
        raise SystemExit(
            f"no sample data in {args.data_root}/{args.category}; run "
            f"python tools/make_sample_data.py --out {args.data_root}"
        )
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    torch.set_num_threads(args.threads)
    print(f"load before: {os.getloadavg()[0]:.2f}; threads {args.threads}", flush=True)
    print(
        "| method, caches | epoch 1 s: data / frozen / trained | later epochs s: data / "
        "frozen / trained | val s (n) | s per epoch, val incl. | train img/s, later "
        "| image AUROC |"
    )
    print("|---|---|---|---|---|---|---|")
    results = []
    for method in args.methods:
        runs = {"off": [], "on": []}
        for r in range(args.repeats):  # off, on, then on, off, ...: drifting load cancels
            for name in ("off", "on") if r % 2 == 0 else ("on", "off"):
                runs[name].append(run(method, args, OFF if name == "off" else {}))
        off, on = (min(runs[n], key=lambda x: x["per_epoch"]) for n in ("off", "on"))
        results.append(dict(method=method, off=off, on=on, runs=runs))
        print(row(f"{method}, off", off))
        print(row(f"{method}, on", on))
        print(
            f"| {method}: off / on | | | | {off['per_epoch'] / on['per_epoch']:.2f}x "
            f"| {on['images_per_s'] / off['images_per_s']:.2f}x | |",
            flush=True,
        )
    print(f"load after: {os.getloadavg()[0]:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
