"""Create an EfficientAD teacher offline: distil EfficientNet-Lite0 into a PDN.

Writes ``backbones/pdn_<size>_effnetlite0.pth`` (atomically), which the EfficientAD
configs load (``model.teacher.weights='effnetlite0'``). Any folder of natural images
works (Imagenette, ImageNet, your own photos; searched recursively). The paper distils
WideResNet-101 on ImageNet for 60 000 steps of 16 images; on a CPU use fewer steps::

    python tools/distill_teacher.py data/imagenette --size small --steps 2000
    # the teacher of the efficientad_*_sample configs (CPU-sized PDN) from the natural
    # photos that ship with scikit-image / scikit-learn (no download):
    python tools/make_sample_data.py --natural data/natural
    python tools/distill_teacher.py data/natural --width 0.25 --out-channels 128 \\
        --image-size 128 --steps 200 --batch-size 16 --lr 1e-3 --crop-scale 0.3 \\
        --source-scale 1 --source-levels 1,2 --seed 0 --threads 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    from adtool.errors import AdtoolError
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from adtool.errors import AdtoolError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image_dir", nargs="+", help="folder(s) of natural images (any layout)")
    parser.add_argument("--size", default="small", choices=["small", "medium"])
    parser.add_argument("--width", type=float, default=1.0, help="PDN width (default 1)")
    parser.add_argument("--out-channels", type=int, default=384, help="PDN output (384)")
    parser.add_argument("--steps", type=int, default=60000, help="Adam steps (paper: 60000)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per step (16)")
    parser.add_argument("--lr", type=float, default=1e-4, help="Adam lr (paper: 1e-4)")
    parser.add_argument("--image-size", type=int, default=256, help="PDN input side (256)")
    parser.add_argument(
        "--crop-scale",
        type=float,
        default=1.0,
        help="smallest random square crop, as a fraction of an image's shorter side "
        "(default 1: whole images, as the official; use ~0.3 for a small folder)",
    )
    parser.add_argument(
        "--source-scale",
        type=int,
        default=2,
        help="the source sees the views at this many times --image-size (paper: 2)",
    )
    parser.add_argument(
        "--source-levels",
        default=None,
        help="source feature levels, comma-separated (default 2,3: strides 8 and 16; with "
        "--source-scale 1 use 1,2)",
    )
    parser.add_argument("--backbone-dir", default=None, help="output folder (./backbones)")
    parser.add_argument("--out", default=None, help="output file (overrides --backbone-dir)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from adtool.models.anomaly.efficientad.distill import distill_teacher

    if args.threads:
        torch.set_num_threads(args.threads)
    levels = None
    if args.source_levels:
        try:
            levels = tuple(int(v) for v in args.source_levels.split(","))
        except ValueError:
            print(
                f"error: --source-levels takes integers like 1,2, not {args.source_levels!r}",
                file=sys.stderr,
            )
            return 2
    try:
        result = distill_teacher(
            args.image_dir,
            size=args.size,
            out=args.out,
            backbone_dir=args.backbone_dir,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            image_size=args.image_size,
            width=args.width,
            out_channels=args.out_channels,
            crop_scale=args.crop_scale,
            source_scale=args.source_scale,
            source_levels=levels,
            seed=args.seed,
        )
    except (AdtoolError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    losses = result["losses"]
    print(
        f"{result['path']}: {result['n_images']} images, {len(losses)} steps in "
        f"{result['seconds']:.0f} s, loss {losses[0]:.4f} -> {losses[-1]:.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
