"""anomalib's STFPM on the sample data, image AUROC after every epoch (run in anomalib's venv).

The side-by-side reference of docs/benchmarks.md. anomalib must not download weights:
the teacher gets EfficientNet-Lite0's ImageNet weights from a timm state dict made once
in adtool's venv (the same weights adtool's teacher loads)::

    python -c "import torch; from adtool.models.backbones.weights import \\
        _efficientnet_lite0_package_file as f, load_timm_state_dict as l; \\
        torch.save(l('tf_efficientnet_lite0', f()), 'lite0_timm.pth')"
    OMP_NUM_THREADS=1 /path/to/anomalib-venv/bin/python benchmarks/anomalib_stfpm.py \\
        --data-root data/sample --weights lite0_timm.pth --categories disk twill washer \\
        --epochs 30 --image-size 128

Same settings as anomalib's defaults otherwise: batch 32, SGD lr 0.4 / momentum 0.9 /
weight decay 1e-3, ImageNet normalisation, validation on the test split every epoch.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import timm
import torch


def offline_timm(weights: str):
    """timm.create_model that loads ``weights`` instead of downloading ImageNet ones."""
    original = timm.create_model

    def create_model(name, pretrained=False, **kwargs):
        model = original(name, pretrained=False, **kwargs)
        if pretrained:
            state = torch.load(weights, map_location="cpu")
            missing, _ = model.load_state_dict(state, strict=False)
            if missing:
                raise RuntimeError(f"weights for {name} miss {missing[:3]}")
        return model

    return create_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--categories", nargs="+", default=["disk", "twill", "washer"])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--work-dir", default="work_dirs/anomalib_stfpm")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    timm.create_model = offline_timm(args.weights)
    import anomalib.models.components.feature_extractors.timm as fx
    from anomalib.data import MVTecAD
    from anomalib.engine import Engine
    from anomalib.metrics import AUROC, Evaluator
    from anomalib.models import Stfpm
    from lightning.pytorch.callbacks import Callback

    fx.timm.create_model = timm.create_model

    class EpochAUROC(Callback):
        def __init__(self):
            self.auroc, self.epoch_s, self.start = [], [], None

        def on_train_epoch_start(self, trainer, pl_module):
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):
            # Lightning validates before this hook, so the epoch's metrics are logged.
            value = trainer.callback_metrics.get("image_AUROC")
            if value is not None:
                self.auroc.append(float(value))
                self.epoch_s.append(time.perf_counter() - self.start)

    rows = []
    for category in args.categories:
        data = MVTecAD(
            root=args.data_root,
            category=category,
            train_batch_size=args.batch_size,
            eval_batch_size=32,
            num_workers=0,
        )
        model = Stfpm(
            backbone="tf_efficientnet_lite0",
            layers=[1, 2, 3],
            pre_processor=Stfpm.configure_pre_processor(image_size=(args.image_size,) * 2),
            visualizer=False,
            # anomalib validates without metrics by default; image AUROC every epoch here.
            evaluator=Evaluator(
                val_metrics=[AUROC(fields=["pred_score", "gt_label"], prefix="image_")],
                test_metrics=[AUROC(fields=["pred_score", "gt_label"], prefix="image_")],
            ),
        )
        cb = EpochAUROC()
        engine = Engine(
            max_epochs=args.epochs,
            accelerator="cpu",
            devices=1,
            logger=False,
            callbacks=[cb],
            default_root_dir=str(Path(args.work_dir) / category),
            num_sanity_val_steps=0,
            enable_progress_bar=False,
        )
        start = time.perf_counter()
        engine.fit(model=model, datamodule=data)
        total = time.perf_counter() - start
        row = {
            "category": category,
            "auroc": cb.auroc,
            "s_per_epoch": total / args.epochs,
            "epochs": args.epochs,
        }
        rows.append(row)
        shown = " ".join(f"{a:.3f}" for a in cb.auroc)
        print(
            f"anomalib stfpm {category}: {row['s_per_epoch']:.1f} s/epoch, AUROC {shown}",
            flush=True,
        )
        if args.out:
            Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
