"""Deploy-path speed per method: PyTorch eval vs ONNX Runtime vs OpenVINO (issues 17, 18).

    python benchmarks/export_speed.py [--methods patchcore padim ... | all] [--threads 1]
        [--batch 1 16] [--repeats 3] [--images 16] [--data DIR] [--out DIR]

For each method, one config (the one tests/apis/test_export_parity.py exports: the
method's ``*_sample`` config, else its EfficientNet-Lite0 one) with its real bundled
backbone weights (EfficientAD: the shipped distilled teacher in tests/assets/efficientad),
built on the generated sample data (category ``disk``): memory banks fitted on its 40
training images and the methods' ``before_train`` / ``after_train`` passes run, as
benchmarks/inference_speed.py does; trained parts stay at random init (a forward's time
does not depend on the values). The post-processor gets a threshold and min/max statistics
from the test scores, so the graph has every output a deployment has. Then the model is
exported (``export_onnx``, dynamic batch, uint8 input) and, on the same decoded uint8 test
images (decode is not timed), interleaved pass by pass so machine load hits all alike:

* ``pytorch``: the eval-mode optimised path tools/test.py runs (folded batch-norm,
  channels-last, PatchCore's pruned k-NN), wrapped as the graph is (normalisation ->
  ``model.outputs`` -> post-processor), one torch thread per ``--threads``;
* ``onnxruntime``: :class:`adtool.deploy.OnnxInferencer`, ``--threads`` intra-op threads;
* ``openvino``: :class:`adtool.deploy.OpenVinoInferencer` on the same ``.onnx`` (CPU,
  float32, ``--threads`` inference threads).

Printed per method and backend: images/s and ms/image at each batch size (best of
``--repeats`` passes), the speed ratio backend/PyTorch at each batch size (> 1: faster
than PyTorch), max |score difference| and max |map difference| vs PyTorch over the test
images (with the PyTorch score and map ranges for scale), and the .onnx size. A backend
that is not installed or fails on a method is reported in its row and skipped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

BACKENDS = ("pytorch", "onnxruntime", "openvino")
FOCUS = ["patchcore", "padim", "stfpm", "fastflow", "efficientad"]
#: Config overrides a method needs to run offline with real weights.
OVERRIDES = {
    "efficientad": {
        "model.teacher.weights": str(
            REPO / "tests" / "assets" / "efficientad" / "pdn_small-w0.25-c128_effnetlite0.pth"
        )
    },
}


def _lifecycle(model, name: str) -> bool:
    return not getattr(getattr(type(model), name), "lifecycle_noop", False)


def prepare(method: str, config: str, root: Path, n_images: int):
    """(calibrated model, config, (N, 3, H, W) uint8 test images, note)."""
    from mmengine.runner import Runner

    from adtool.apis.core import load_config, set_data, use_dataset
    from adtool.apis.inference import build_inference_pipeline
    from adtool.models.anomaly.base import MemoryBankModel
    from adtool.registry import DATASETS, MODELS

    cfg = load_config(config, OVERRIDES.get(method))
    if cfg.train_dataloader.dataset.get("type") != "SampleDataset":
        use_dataset(cfg, "sample")
    set_data(cfg, root, "disk")
    for key in ("train_dataloader", "test_dataloader"):
        cfg[key]["num_workers"] = 0
        cfg[key]["persistent_workers"] = False
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    train_loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    model.eval()
    note = "random-init trained parts"
    if _lifecycle(model, "before_train"):
        model.before_train(train_loader)
    if isinstance(model, MemoryBankModel):
        with torch.no_grad():
            for batch in train_loader:
                model.fit_step(batch)
        model.fit()
        note = f"fitted on {len(train_loader.dataset)} sample images"
    if _lifecycle(model, "after_train"):
        model.after_train(train_loader)
    model.eval()
    test = DATASETS.build(cfg.test_dataloader.dataset)
    pipeline = build_inference_pipeline(cfg)
    paths = [Path(test[i]["data_samples"].img_path) for i in range(len(test))]
    paths = (paths * math.ceil(n_images / len(paths)))[:n_images]
    images = torch.stack([pipeline(p)["inputs"] for p in paths])
    calibrate(model, images)
    return model, cfg, images, note


@torch.no_grad()
def calibrate(model, images: torch.Tensor) -> None:
    """A threshold (the median test score) and min/max statistics of the test outputs, so
    that the graph has the label and normalised outputs."""
    x = model.data_preprocessor({"inputs": list(images)}, False)["inputs"]
    scores, maps = model.outputs(x)
    scores = scores.float()
    model.postprocessor.set_thresholds(
        {"f1_percentile": float(scores.median())},
        "f1_percentile",
        None if maps is None else float(maps.float().mean()),
    )
    model.postprocessor.set_normalization(
        float(scores.min()),
        float(scores.max()),
        None if maps is None else float(maps.min()),
        None if maps is None else float(maps.max()),
    )


class TorchRunner:
    """The graph's computation in PyTorch on the optimised eval path."""

    def __init__(self, model) -> None:
        from adtool.deploy import DeployGraph

        self.graph = DeployGraph(model).eval()
        self.names = None

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            outs = self.graph(torch.from_numpy(batch))
        if self.names is None:
            has_map = len(outs) > 1 + self.graph.has_score_norm + self.graph.has_label
            self.names = self.graph.output_names(has_map)
        return {n: o.numpy() for n, o in zip(self.names, outs)}


def time_pass(runner, batches: list[np.ndarray]) -> tuple[float, dict]:
    start = time.perf_counter()
    outs = [runner.run(b) for b in batches]
    wall = time.perf_counter() - start
    merged = {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
    return wall, merged


def max_diff(a: np.ndarray | None, b: np.ndarray | None) -> float:
    if a is None or b is None:
        return float("nan")
    if a.shape != b.shape:  # a wrong graph: as bad as it gets
        return math.inf
    return float(np.nan_to_num(np.abs(a.astype(np.float64) - b.astype(np.float64))).max())


def bench_method(method, config, root, batch_sizes, n_images, repeats, threads, workdir):
    from adtool.deploy import OnnxInferencer, OpenVinoInferencer, export_onnx

    model, cfg, images, note = prepare(method, config, root, max([n_images, *batch_sizes]))
    onnx_path = Path(workdir) / f"{method}.onnx"
    start = time.perf_counter()
    meta = export_onnx(model, cfg, onnx_path, dynamic_batch=True, config_name=config)
    export_s = time.perf_counter() - start
    size_mb = onnx_path.stat().st_size / 1e6
    runners: dict[str, object] = {"pytorch": TorchRunner(model)}
    errors: dict[str, str] = {}
    for name, cls in (("onnxruntime", OnnxInferencer), ("openvino", OpenVinoInferencer)):
        try:
            runners[name] = cls(onnx_path, threads=threads)
        except Exception as e:  # noqa: BLE001 - report the backend's failure, go on
            errors[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
    array = images.numpy()
    result = {
        "method": method,
        "config": config,
        "note": note,
        "exporter": meta["exporter"],
        "onnx_mb": size_mb,
        "export_s": export_s,
        "input": "x".join(map(str, meta["input_size"])),
        "backends": {},
    }
    diffs: dict[str, list[float]] = {}
    ranges = [math.nan, math.nan]
    for bs in batch_sizes:
        n = max(n_images, bs) // bs * bs
        batches = [array[i : i + bs] for i in range(0, n, bs)]
        best: dict[str, float] = {}
        for name, runner in list(runners.items()):  # warm-up (and shape compilation)
            try:
                runner.run(batches[0])
            except Exception as e:  # noqa: BLE001
                errors[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
                runners.pop(name)
        outputs: dict[str, dict] = {}
        for _ in range(repeats):
            for name, runner in runners.items():
                wall, merged = time_pass(runner, batches)
                best[name] = min(best.get(name, math.inf), wall)
                outputs.setdefault(name, merged)
        # Every batch size's outputs are compared (a graph traced at batch 1 must give the
        # same at batch 16).
        ref = outputs.get("pytorch", {})
        if "score" in ref:
            ranges[0] = float(np.ptp(ref["score"]))
        if "anomaly_map" in ref:
            ranges[1] = float(np.ptp(ref["anomaly_map"]))
        for name, merged in outputs.items():
            worst = diffs.setdefault(name, [math.nan, math.nan])
            for i, key in enumerate(("score", "anomaly_map")):
                worst[i] = float(np.fmax(worst[i], max_diff(merged.get(key), ref.get(key))))
        for name in runners:
            row = result["backends"].setdefault(name, {})
            row[f"ips_{bs}"] = n / best[name]
            row[f"ms_{bs}"] = 1000 * best[name] / n
            row[f"ratio_{bs}"] = best["pytorch"] / best[name] if "pytorch" in best else math.nan
    result["score_range"], result["map_range"] = ranges
    for name, (score_diff, map_diff) in diffs.items():
        if name in result["backends"]:
            result["backends"][name].update(score_diff=score_diff, map_diff=map_diff)
    for name, why in errors.items():
        result["backends"][name] = {"error": why}
    return result


def format_table(results: list[dict], batch_sizes: list[int]) -> str:
    cols = ["method (config)", "backend"]
    for bs in batch_sizes:
        cols += [f"b{bs} img/s", f"b{bs} ms/img", f"b{bs} x PyTorch"]
    cols += ["max dscore (range)", "max dmap (range)", ".onnx MB"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['method']} | error: {r['error']} |" + " |" * (len(cols) - 2))
            continue
        for name in BACKENDS:
            row = r["backends"].get(name)
            label = f"{r['method']} ({r['config']})" if name == "pytorch" else ""
            if row is None:
                continue
            if "error" in row:
                cells = [label, name, f"failed: {row['error']}"] + [""] * (len(cols) - 3)
                lines.append("| " + " | ".join(cells) + " |")
                continue
            cells = [label, name]
            for bs in batch_sizes:
                cells += [
                    f"{row[f'ips_{bs}']:.1f}",
                    f"{row[f'ms_{bs}']:.1f}",
                    f"{row[f'ratio_{bs}']:.2f}",
                ]
            if name == "pytorch":
                cells += [f"({r['score_range']:.3g})", f"({r['map_range']:.3g})"]
                cells += [f"{r['onnx_mb']:.1f}"]
            else:
                cells += [f"{row['score_diff']:.2g}", f"{row['map_diff']:.2g}", ""]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="+", default=FOCUS, help="method folders or 'all'")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--images", type=int, default=16, help="test images per pass")
    parser.add_argument("--repeats", type=int, default=3, help="passes per backend (best kept)")
    parser.add_argument("--data", type=Path, default=None, help="sample data (generated)")
    parser.add_argument("--out", type=Path, default=None, help="write table.md, rows.json")
    args = parser.parse_args(argv)

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("mmengine").setLevel(logging.ERROR)
    from adtool.datasets import make_sample_dataset
    from adtool.registry import register_all_modules

    register_all_modules()
    from adtool.apis.config_index import one_config_per_method

    configs = one_config_per_method()
    methods = list(configs) if args.methods == ["all"] else args.methods
    unknown = [m for m in methods if m not in configs]
    if unknown:
        parser.error(f"unknown method {unknown[0]!r}; known: {', '.join(configs)}")
    print(
        f"threads {args.threads} (torch, ONNX Runtime intra-op, OpenVINO inference); "
        f"images per pass {args.images}; best of {args.repeats}; "
        f"load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data or make_sample_dataset(Path(tmp) / "data", seed=0)
        for method in methods:
            start = time.perf_counter()
            try:
                new = bench_method(
                    method,
                    configs[method],
                    Path(root),
                    args.batch,
                    args.images,
                    args.repeats,
                    args.threads,
                    tmp,
                )
            except Exception as e:  # one method's failure must not hide the others
                new = {"method": method, "error": f"{type(e).__name__}: {str(e)[:200]}"}
            results.append(new)
            print(format_table([new], args.batch).split("\n", 2)[-1], flush=True)
            print(
                f"  ({method}: {time.perf_counter() - start:.0f} s, load {os.getloadavg()[0]:.2f})",
                flush=True,
            )
    table = format_table(results, args.batch)
    print(f"\nload at the end {os.getloadavg()[0]:.2f}\n" + table)
    if args.out:
        from adtool.fileio import atomic_write_text

        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "table.md", table + "\n")
        atomic_write_text(args.out / "rows.json", json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
