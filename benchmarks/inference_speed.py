"""Test-time throughput per method: reference PyTorch path vs the optimised one.

    python benchmarks/inference_speed.py [--methods patchcore padim ...] [--threads 1]
        [--batch 1 16] [--images 16] [--backends torch] [--out DIR]

For each method, its EfficientNet-Lite0 config at 256 px (the methods without one: the
config named in ``CONFIGS``) with the real bundled backbone weights (EfficientAD: the
teacher shipped in tests/assets/efficientad/, ``OVERRIDES``). Memory-bank methods
(PatchCore, PaDiM, DFM, DFKDE, CFA's memory...) are fitted on the generated sample data
(category ``disk``, 40 training images); methods trained by gradient keep their trained
parts at random init (the time of a forward does not depend on the values). Then, on the
same test images, interleaved image by image so machine load hits both alike:

* ``reference``: today's code path (inside ``reference_inference()``, the same path as
  ``model.inference_optimized = False``, without clearing the optimised path's copies);
* ``optimised``: the eval-mode path of adtool/models/fast_inference.py (batch-norm folded
  into the convolutions, channels-last backbones) and PatchCore's pruned exact k-NN.

Printed per method, path and batch size: images/s of the whole loop (decode + model) and
ms/image split into decode+preprocess (read, resize, normalise), backbone (every timm
network of the model), head/search (the rest of ``anomaly_outputs``) and post-processing
(``to_input_map``: upsampling and blur); then the score agreement between the paths
(max |difference| of image scores and of maps) and the optimised/reference ratio. The
optimised loop decodes the next image in a background thread while the model runs
(``--decode-thread``, on by default). The machine's matmul and conv GFLOP/s (one thread)
are printed for scale.

``--backends`` names the runtimes: ``torch`` is built in; a runtime that export adds
(``onnxruntime``, ``openvino``) plugs in through ``BACKENDS`` (a function taking the fitted
model and a (B, 3, H, W) batch and returning scores and maps); names not available are
reported and skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

CONFIGS = {
    "patchcore": "patchcore_effnetlite0_mvtec",
    "padim": "padim_effnetlite0_mvtec",
    "stfpm": "stfpm_effnetlite0_mvtec",
    "fastflow": "fastflow_effnetlite0_mvtec",
    "efficientad": "efficientad_s_mvtec",
    "cfa": "cfa_effnetlite0_mvtec",
    "cflow": "cflow_effnetlite0_mvtec",
    "csflow": "csflow_effnetlite0_mvtec",
    "dfkde": "dfkde_effnetlite0_mvtec",
    "dfm": "dfm_effnetlite0_mvtec",
    "fre": "fre_effnetlite0_mvtec",
    "reverse_distillation": "reverse_distillation_effnetlite0_mvtec",
    "supersimplenet": "supersimplenet_effnetlite0_mvtec",
    "uflow": "uflow_effnetlite0_mvtec",
    "uninet": "uninet_effnetlite0_mvtec",
    "autoencoder": "autoencoder_conv_mvtec",
    "dinomaly": "dinomaly_tiny_sample",
    "draem": "draem_mvtec",
    "dsr": "dsr_mvtec",
    "ganomaly": "ganomaly_mvtec",
}
FOCUS = ["patchcore", "padim", "stfpm", "fastflow", "efficientad"]
#: ``--cfg-options`` per method. EfficientAD: the teacher shipped in tests/assets (the
#: sample config's PDN: width 0.25, 128 channels, student and autoencoder at width 0.25),
#: at the paper's 256 px, since the paper-size teacher file is not in the repository.
SHIPPED_TEACHER = Path(__file__).resolve().parents[1] / (
    "tests/assets/efficientad/pdn_small-w0.25-c128_effnetlite0.pth"
)
OVERRIDES = {
    "efficientad": [
        f"model.teacher.weights={SHIPPED_TEACHER}",
        "model.teacher.width=0.25",
        "model.teacher.out_channels=128",
        "model.width=0.25",
    ],
}

#: Extra runtimes: name -> (model, inputs) -> (scores, maps). The export work registers
#: ``onnxruntime`` / ``openvino`` here; until then they are reported as unavailable.
BACKENDS: dict[str, Callable] = {}


def matmul_gflops(size: int = 1024, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def conv_gflops(channels: int = 64, size: int = 128, repeats: int = 5) -> float:
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).eval()
    x = torch.randn(1, channels, size, size)
    with torch.no_grad():
        conv(x)
        start = time.perf_counter()
        for _ in range(repeats):
            conv(x)
    return 2 * channels * channels * 9 * size * size * repeats / (time.perf_counter() - start) / 1e9


class StageTimer:
    """Wall time spent in the model's backbones and in ``to_input_map``, per call."""

    def __init__(self, model) -> None:
        from adtool.models.backbones.timm_backbone import TimmBackbone
        from adtool.models.backbones.vit_token_backbone import ViTTokenBackbone

        self.backbone = self.post = 0.0
        self._start: dict[int, float] = {}
        self.handles = []
        seen: set[int] = set()
        for module in model.modules():
            if isinstance(module, (TimmBackbone, ViTTokenBackbone)) and id(module) not in seen:
                seen.update(id(m) for m in module.modules())
                self.handles.append(module.register_forward_pre_hook(self._enter))
                self.handles.append(module.register_forward_hook(self._leave))
        original = model.to_input_map

        def timed_map(*args, **kwargs):
            start = time.perf_counter()
            out = original(*args, **kwargs)
            self.post += time.perf_counter() - start
            return out

        model.to_input_map = timed_map

    def _enter(self, module, _inputs) -> None:
        self._start[id(module)] = time.perf_counter()

    def _leave(self, module, _inputs, _output) -> None:
        self.backbone += time.perf_counter() - self._start.pop(id(module))

    def reset(self) -> None:
        self.backbone = self.post = 0.0


def prepare(method: str, root: Path):
    """(model fitted or at random init, pipeline, test image paths, note)."""
    from mmengine.dataset import pseudo_collate

    from adtool.apis.core import load_config, set_data, use_dataset
    from adtool.apis.inference import build_inference_pipeline
    from adtool.models.anomaly.base import MemoryBankModel
    from adtool.registry import DATASETS, MODELS

    cfg = load_config(CONFIGS[method], OVERRIDES.get(method))
    use_dataset(cfg, "sample")
    set_data(cfg, root, "disk")
    model = MODELS.build(cfg.model)
    note = "random-init trained parts"
    if isinstance(model, MemoryBankModel):
        train = DATASETS.build(cfg.train_dataloader.dataset)
        model.eval()
        for i in range(0, len(train), 16):
            model.fit_step(pseudo_collate([train[j] for j in range(i, min(i + 16, len(train)))]))
        model.fit()
        note = f"fitted on {len(train)} sample images"
    model.eval()
    test = DATASETS.build(cfg.test_dataloader.dataset)
    paths = [Path(test[i]["data_samples"].img_path) for i in range(len(test))]
    return model, build_inference_pipeline(cfg), paths, note


def preprocess(model, pipeline, paths):
    from mmengine.dataset import pseudo_collate

    batch = pseudo_collate([pipeline(p) for p in paths])
    return model.data_preprocessor(batch, False)["inputs"]


def run_path(model, pipeline, batches, optimised: bool, timer: StageTimer, pool):
    """One pass over ``batches`` (lists of paths): stage seconds, outputs, wall seconds."""
    from adtool.models.fast_inference import reference_inference

    # Not ``model.inference_optimized = ...``: its setter re-runs train(), which drops the
    # folded copies, and each optimised pass would then time their rebuild.
    def path():
        return contextlib.nullcontext() if optimised else reference_inference()

    decode = model_s = 0.0
    timer.reset()
    scores, maps = [], []
    start = time.perf_counter()
    pending = pool.submit(preprocess, model, pipeline, batches[0]) if pool else None
    for i, paths in enumerate(batches):
        t0 = time.perf_counter()
        if pool:
            inputs = pending.result()
            if i + 1 < len(batches):
                pending = pool.submit(preprocess, model, pipeline, batches[i + 1])
        else:
            inputs = preprocess(model, pipeline, paths)
        t1 = time.perf_counter()
        with torch.no_grad(), path():
            s, m = model.outputs(inputs)
        t2 = time.perf_counter()
        decode += t1 - t0
        model_s += t2 - t1
        scores.append(s.float())
        maps.append(None if m is None else m.float())
    wall = time.perf_counter() - start
    return dict(
        decode=decode,
        backbone=timer.backbone,
        post=timer.post,
        head=model_s - timer.backbone - timer.post,
        model=model_s,
        wall=wall,
    ), (torch.cat(scores), None if maps[0] is None else torch.cat(maps))


def max_diff(a: torch.Tensor | None, b: torch.Tensor | None) -> float:
    if a is None or b is None:
        return float("nan")
    return float((a - b).abs().nan_to_num(0.0).max())


def bench_method(method, root, batch_sizes, n_images, repeats, decode_thread, backends):
    model, pipeline, paths, note = prepare(method, root)
    timer = StageTimer(model)
    rows = []
    for bs in batch_sizes:
        use = (paths * math.ceil(max(n_images, bs) / len(paths)))[: max(n_images, bs)]
        batches = [use[i : i + bs] for i in range(0, len(use) - bs + 1, bs)]
        n = len(batches) * bs
        pool = ThreadPoolExecutor(1) if decode_thread else None
        # Warm-up: builds the folded copies and the pruned index, fills caches.
        for optimised in (False, True):
            run_path(model, pipeline, batches[:1], optimised, timer, None)
        totals = {False: [], True: []}
        outs = {}
        for _ in range(repeats):
            for optimised in (False, True):
                stage, out = run_path(
                    model, pipeline, batches, optimised, timer, pool if optimised else None
                )
                totals[optimised].append(stage)
                outs[optimised] = out
        if pool:
            pool.shutdown()
        best = {k: min(v, key=lambda s: s["wall"]) for k, v in totals.items()}
        score_diff = max_diff(outs[False][0], outs[True][0])
        map_diff = max_diff(outs[False][1], outs[True][1])
        for optimised, name in ((False, "reference"), (True, "optimised")):
            s = best[optimised]
            rows.append(
                dict(
                    method=method,
                    path=name,
                    batch=bs,
                    images_per_s=n / s["wall"],
                    ms_decode=1000 * s["decode"] / n,
                    ms_backbone=1000 * s["backbone"] / n,
                    ms_head=1000 * s["head"] / n,
                    ms_post=1000 * s["post"] / n,
                    ms_model=1000 * s["model"] / n,
                    speedup=best[False]["wall"] / s["wall"],
                    model_speedup=best[False]["model"] / s["model"],
                    score_diff=score_diff if optimised else 0.0,
                    map_diff=map_diff if optimised else 0.0,
                    note=note,
                )
            )
        for name in backends:
            if name == "torch":
                continue
            if name not in BACKENDS:
                rows.append(dict(method=method, path=name, batch=bs, note="not available"))
    return rows


def format_table(rows: list[dict]) -> str:
    head = (
        "| method | path | batch | images/s | decode+pre ms | backbone ms | head/search ms "
        "| post ms | model ms | opt/ref (loop) | opt/ref (model) | max dscore | max dmap |"
    )
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        if "images_per_s" not in r:
            lines.append(f"| {r['method']} | {r['path']} | {r['batch']} | {r['note']} |" + " |" * 9)
            continue
        lines.append(
            f"| {r['method']} | {r['path']} | {r['batch']} | {r['images_per_s']:.1f} "
            f"| {r['ms_decode']:.1f} | {r['ms_backbone']:.1f} | {r['ms_head']:.1f} "
            f"| {r['ms_post']:.1f} | {r['ms_model']:.1f} | {r['speedup']:.2f} "
            f"| {r['model_speedup']:.2f} | {r['score_diff']:.2g} | {r['map_diff']:.2g} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=FOCUS, help="names or 'all'")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--images", type=int, default=16, help="test images per pass")
    parser.add_argument("--repeats", type=int, default=2, help="passes per path (best kept)")
    parser.add_argument("--backends", nargs="+", default=["torch"])
    parser.add_argument("--no-decode-thread", dest="decode_thread", action="store_false")
    parser.add_argument("--data", type=Path, default=None, help="sample data (generated)")
    parser.add_argument("--out", type=Path, default=None, help="write table.md, rows.json")
    args = parser.parse_args(argv)

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    from adtool.datasets import make_sample_dataset
    from adtool.registry import register_all_modules

    register_all_modules()
    methods = list(CONFIGS) if args.methods == ["all"] else args.methods
    unknown = [m for m in methods if m not in CONFIGS]
    if unknown:
        parser.error(f"unknown method {unknown[0]!r}; known: {', '.join(CONFIGS)}")
    print(
        f"threads {args.threads}; matmul {matmul_gflops():.1f} GFLOP/s, "
        f"conv3x3 {conv_gflops():.1f} GFLOP/s; load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or make_sample_dataset(Path(tmp) / "data", seed=0)
        for method in methods:
            start = time.perf_counter()
            try:
                new = bench_method(
                    method,
                    Path(root),
                    args.batch,
                    args.images,
                    args.repeats,
                    args.decode_thread,
                    args.backends,
                )
            except Exception as e:  # one method's failure must not hide the others
                new = [
                    dict(method=method, path="error", batch="-", note=f"{type(e).__name__}: {e}")
                ]
            rows += new
            print(format_table(new).split("\n", 2)[-1], flush=True)
            print(f"  ({method}: {time.perf_counter() - start:.0f} s)", flush=True)
    table = format_table(rows)
    print("\n" + table)
    if args.out:
        from adtool.fileio import atomic_write_text

        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "table.md", table + "\n")
        atomic_write_text(args.out / "rows.json", json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
