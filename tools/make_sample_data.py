"""Generate the procedural sample dataset (MVTec layout) used by the sample configs and tests.

Example::

    python tools/make_sample_data.py --out data/sample --seed 0 --size 256
    # the hard categories (subtle defects that tell models apart), beside the easy ones
    python tools/make_sample_data.py --out data/sample --hard
    # generated sets for the HuggingFace task configs (counts: the generator's defaults)
    python tools/make_sample_data.py --task classification --out data/hf_cls
    python tools/make_sample_data.py --task detection --out data/hf_coco --n-train 300 --n-val 60
    # real images shipped with scikit-learn (offline): handwritten digits (classification,
    # detection and segmentation scenes) and two photographs (super-resolution tiles)
    python tools/make_sample_data.py --task classification --real-digits --out data/digits
    python tools/make_sample_data.py --task super_resolution --real --out data/sr_photos
    # 18 natural photos shipped with scikit-image and scikit-learn, as one image folder
    # (EfficientAD's teacher distillation and penalty images)
    python tools/make_sample_data.py --natural data/natural
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

try:
    from adtool.datasets.synthetic import (
        HARD_SAMPLE_CATEGORIES,
        SAMPLE_CATEGORIES,
        SAMPLE_DEFECTS,
        make_sample_dataset,
    )
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from adtool.datasets.synthetic import (
        HARD_SAMPLE_CATEGORIES,
        SAMPLE_CATEGORIES,
        SAMPLE_DEFECTS,
        make_sample_dataset,
    )


# task -> (writer of real scikit-learn images in adtool.datasets.hf, its count keywords)
HF_REAL_WRITERS = {
    "classification": ("make_digits_classification_dataset", ()),
    "detection": ("make_digits_detection_dataset", ("n_train", "n_val")),
    "segmentation": ("make_digits_segmentation_dataset", ("n_train", "n_val")),
    "super_resolution": ("make_photo_sr_dataset", ()),
}
# task -> (generator in adtool.datasets.hf, its (train count, val count) keywords)
HF_GENERATORS = {
    "classification": ("make_classification_dataset", ("n_train_per_class", "n_val_per_class")),
    "detection": ("make_coco_detection_dataset", ("n_train", "n_val")),
    "segmentation": ("make_segmentation_dataset", ("n_train", "n_val")),
    "super_resolution": ("make_sr_dataset", ("n_train", "n_val")),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/sample", help="output root (default data/sample)")
    parser.add_argument(
        "--task",
        default="anomaly",
        choices=["anomaly", *HF_GENERATORS],
        help="anomaly (default: the MVTec-layout sample data) or a HuggingFace task's set",
    )
    parser.add_argument(
        "--real",
        "--real-digits",
        dest="real",
        action="store_true",
        help="HF tasks: real images that ship with scikit-learn instead of generated ones: "
        "its 1797 handwritten digits (classification: an 80/20 ImageFolder split; detection "
        "and segmentation: scenes of 1-3 enlarged digits) or, for super_resolution, tiles of "
        "its two photographs",
    )
    parser.add_argument(
        "--natural",
        metavar="OUT",
        default=None,
        help="write the natural photos that ship with scikit-image and scikit-learn "
        "(18 PNGs, longer side <= 512) to OUT and stop",
    )
    parser.add_argument(
        "--n-val",
        type=int,
        default=None,
        help="HF tasks: validation images (per class for classification)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    parser.add_argument(
        "--n-train",
        type=int,
        default=None,
        help="normal train images per category (default 40); HF tasks: train images "
        "(per class for classification; default the generator's)",
    )
    parser.add_argument("--n-test-good", type=int, default=15, help="normal test images")
    parser.add_argument("--n-test-defect", type=int, default=8, help="test images per defect")
    parser.add_argument(
        "--categories",
        default=None,
        help=f"comma-separated categories among {','.join(SAMPLE_DEFECTS)} (default the easy "
        f"set {','.join(SAMPLE_CATEGORIES)}; with --hard {','.join(HARD_SAMPLE_CATEGORIES)})",
    )
    parser.add_argument(
        "--hard",
        action="store_true",
        help=f"write the hard categories {','.join(HARD_SAMPLE_CATEGORIES)} (small, "
        "low-contrast, texture-like defects on a woven texture and on a washer lying on "
        "wood; models score apart there) instead of the easy ones",
    )
    return parser.parse_args(argv)


def _make_task_data(args: argparse.Namespace) -> int:
    from adtool.datasets import hf

    name, keys = (HF_REAL_WRITERS if args.real else HF_GENERATORS)[args.task]
    if args.real and not keys and (args.n_train is not None or args.n_val is not None):
        print(
            f"error: real {args.task} data has fixed counts; drop --n-train/--n-val",
            file=sys.stderr,
        )
        return 2
    kwargs = {"seed": args.seed}
    for key, value in zip(keys, (args.n_train, args.n_val)):
        if value is not None:
            kwargs[key] = value
    start = time.perf_counter()
    root = getattr(hf, name)(args.out, **kwargs)
    kind = "real" if args.real else "generated"
    print(f"wrote {kind} {args.task} data to {root} in {time.perf_counter() - start:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.natural is not None:
        from adtool.datasets.hf import make_natural_image_folder

        start = time.perf_counter()
        root = make_natural_image_folder(args.natural)
        n = len(list(root.glob("*.png")))
        print(f"wrote {n} natural images to {root} in {time.perf_counter() - start:.1f} s")
        return 0
    if args.task != "anomaly":
        return _make_task_data(args)
    if args.real:
        print(
            "error: --real writes HF task data; add --task classification (or detection, "
            "segmentation, super_resolution)",
            file=sys.stderr,
        )
        return 2
    if args.n_train is None:
        args.n_train = 40
    if args.hard and args.categories is not None:
        print("error: give --hard or --categories, not both", file=sys.stderr)
        return 2
    if args.categories is None:
        args.categories = ",".join(HARD_SAMPLE_CATEGORIES if args.hard else SAMPLE_CATEGORIES)
    categories = [c for c in args.categories.split(",") if c]
    unknown = [c for c in categories if c not in SAMPLE_DEFECTS]
    if unknown or args.size < 32 or min(args.n_train, args.n_test_good, args.n_test_defect) < 0:
        print(
            f"error: categories must be among {','.join(SAMPLE_DEFECTS)} (got "
            f"{args.categories}), --size >= 32 and counts >= 0",
            file=sys.stderr,
        )
        return 2
    start = time.perf_counter()
    root = make_sample_dataset(
        args.out,
        seed=args.seed,
        size=args.size,
        n_train=args.n_train,
        n_test_good=args.n_test_good,
        n_test_defect=args.n_test_defect,
        categories=categories,
    )
    n_defect = sum(len(SAMPLE_DEFECTS[c]) for c in categories) * args.n_test_defect
    n_good = len(categories) * (args.n_train + args.n_test_good)
    print(
        f"wrote sample dataset to {root}: {', '.join(categories)}; "
        f"{len(categories) * args.n_train} train, {len(categories) * args.n_test_good} good "
        f"test, {n_defect} defect test images ({n_good + n_defect} total, {args.size}px, "
        f"seed {args.seed}) in {time.perf_counter() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
