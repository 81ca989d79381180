"""EfficientAD test speed on this CPU: images/s and ms/image, S and M, 256 px.

    python benchmarks/efficientad_speed.py [--threads 2] [--batches 1 16] [--repeats 5]

Times ``model.anomaly_outputs`` (teacher, student and autoencoder forward, both maps,
quantile normalisation, upsampling to 256 px, image score) on normalised random inputs,
PyTorch eager, float32, after one warm-up call (of a single image, so that a slow CPU
is not spent on a full warm-up batch). Weights do not change the time, so the
teacher is at random init (no teacher file needed). The paper's figures (an NVIDIA RTX
A6000 GPU) are printed beside it for scale: EfficientAD-S 2.2 ms, -M 4.5 ms per image at
batch 1 (Table 1 of arXiv 2303.14535, as recalled offline; "about 2 ms / 600 images/s"
for S in its abstract).
The ONNX Runtime path comes with the export issue.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The paper's GPU figures (NVIDIA RTX A6000) as recalled offline: latency at batch 1 from its
# Table 1, and the abstract's "about 2 ms / 600 images/s" throughput for EfficientAD-S.
PAPER_GPU = {"small": "2.2 ms, ~600 images/s", "medium": "4.5 ms"}


def build(size: str, image_size: int):
    from adtool.registry import MODELS, register_all_modules

    register_all_modules()
    cfg = dict(
        type="EfficientAD",
        data_preprocessor=dict(
            type="AnomalyDataPreprocessor",
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
        ),
        teacher=dict(type="PDNBackbone", size=size, weights=None),
        input_size=image_size,
        penalty_dir=None,
    )
    return MODELS.build(cfg).eval()


def time_model(model, batch: int, image_size: int, repeats: int) -> float:
    """Seconds per image (best of ``repeats`` calls of one batch)."""
    x = torch.randn(batch, 3, image_size, image_size)
    with torch.inference_mode():
        model.anomaly_outputs(x[:1])
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            model.anomaly_outputs(x)
            best = min(best, time.perf_counter() - start)
    return best / batch


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(
        f"EfficientAD test speed, PyTorch {torch.__version__} eager float32 on the CPU, "
        f"{args.threads} thread(s), {args.image_size} px (best of {args.repeats})"
    )
    print(f"{'model':<14}{'batch':>6}{'images/s':>10}{'ms/image':>10}   paper (GPU)")
    for size, name in (("small", "EfficientAD-S"), ("medium", "EfficientAD-M")):
        model = build(size, args.image_size)
        for batch in args.batches:
            per_image = time_model(model, batch, args.image_size, args.repeats)
            print(
                f"{name:<14}{batch:>6}{1 / per_image:>10.2f}{1000 * per_image:>10.1f}   "
                f"{PAPER_GPU[size]}"
            )


if __name__ == "__main__":
    main()
