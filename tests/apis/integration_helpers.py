"""Shared by the integration tests: the DESIGN.md result keys and the tiny-config helper.

(tests/apis has no ``__init__.py``; pytest puts this folder on ``sys.path``, so the test
modules import this file as ``integration_helpers``.)
"""

from adtool.apis import load_config
from adtool.apis.core import use_dataset

DESIGN_KEYS = {
    "model",
    "config",
    "dataset",
    "category",
    "image",
    "pixel",
    "thresholds",
    "confusion",
    "per_defect",
    "timing",
    "n_train",
    "n_test",
}
FILES = [
    "config.py",
    "epoch_1.pth",
    "last_checkpoint",
    "results.json",
    "results.txt",
    "histogram.png",
    "roc.png",
    "pr.png",
]


def tiny(config: str, data_root, size: int = 64, options: dict | None = None):
    """The real config with ``options`` merged, the sample data and ``size`` px images.

    Every dataloader (train, val, test; a None one is skipped) reads ``data_root`` in
    batches of 4; ``Resize`` goes to ``size`` and ``CenterCrop`` to ``size - 8``.
    """
    cfg = load_config(config, options or {})
    if "sample" not in config:
        use_dataset(cfg, "sample")
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        if not cfg.get(key):
            continue
        cfg[key]["batch_size"] = 4
        cfg[key]["dataset"]["data_root"] = str(data_root)
        for step in cfg[key]["dataset"]["pipeline"]:
            if step["type"] == "Resize":
                step["size"] = size
            if step["type"] == "CenterCrop":
                step["size"] = size - 8
    return cfg
