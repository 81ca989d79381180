"""CFlow training and test cost per epoch: adtool's fibre-vectorised steps vs the paper's loop.

    python benchmarks/cflow_speed.py [--threads 1] [--sizes 128 256] [--category disk]
        [--data-root data/sample]

Builds ``cflow_effnetlite0_sample`` (EfficientNet-Lite0 stages 2-4 with the bundled
ImageNet weights, 8 couplings per decoder, 128-d condition) and, for every image size,
times one epoch over the category's training images (batch 4) of

* ``backbone``: the frozen backbone's forward passes alone (the floor of any epoch),
* ``vectorised``: adtool's ``CFlow.loss``: every fibre of the image batch through its
  level's decoder at once, one Adam step per image batch,
* ``loop``: the reference implementation of the official code's loop: per image batch
  and level, the fibres shuffled and split into batches of 64 (the last partial batch
  dropped, as the official code does), one forward, backward and Adam step each,

and the test cost per image of ``CFlow.level_log_probs`` (one decoder pass per level)
against the same per-level loop over fibre batches of 64 without gradients.
Generate the data first: ``python tools/make_sample_data.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adtool.apis import load_config  # noqa: E402
from adtool.registry import MODELS  # noqa: E402

FIBRE_BATCH = 64  # the paper's


def load_images(root: Path, category: str, size: int) -> torch.Tensor:
    paths = sorted((root / category / "train" / "good").glob("*.png"))
    if not paths:
        raise SystemExit(f"no training images under {root / category}; run make_sample_data.py")
    arrays = [np.asarray(Image.open(p).convert("RGB").resize((size, size))) for p in paths]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float()


def build(size: int):
    cfg = load_config("cflow_effnetlite0_sample", {})
    torch.manual_seed(0)
    np.random.seed(0)
    preprocessor = cfg.model.pop("data_preprocessor")  # normalised here instead
    model = MODELS.build(cfg.model)
    model.train()
    mean = torch.tensor(preprocessor.mean).view(1, 3, 1, 1)
    std = torch.tensor(preprocessor.std).view(1, 3, 1, 1)
    opt = torch.optim.Adam(model.decoders.parameters(), lr=1e-3)
    return model, opt, (lambda x: (x - mean) / std)


def epoch_backbone(model, batches):
    with torch.no_grad():
        for x in batches:
            model.backbone(x)


def epoch_vectorised(model, opt, batches):
    for x in batches:
        opt.zero_grad()
        model.loss(x)["loss"].backward()
        opt.step()


def epoch_loop(model, opt, batches) -> int:
    steps = 0
    for x in batches:
        with torch.no_grad():
            feats = model.backbone(x)
        for level, feat in enumerate(feats):
            fibres, cond = model.fibres(feat)
            perm = torch.randperm(fibres.shape[0])
            for f in range(fibres.shape[0] // FIBRE_BATCH):
                idx = perm[f * FIBRE_BATCH : (f + 1) * FIBRE_BATCH]
                log_prob = model.fibre_log_prob(level, fibres[idx], cond[idx])
                opt.zero_grad()
                (-F.logsigmoid(log_prob)).mean().backward()
                opt.step()
                steps += 1
    return steps


@torch.no_grad()
def test_loop(model, x) -> list[torch.Tensor]:
    out = []
    for level, feat in enumerate(model.backbone(x)):
        fibres, cond = model.fibres(feat)
        parts = [
            model.fibre_log_prob(level, fibres[i : i + FIBRE_BATCH], cond[i : i + FIBRE_BATCH])
            for i in range(0, fibres.shape[0], FIBRE_BATCH)
        ]
        b, _, h, w = feat.shape
        out.append(torch.cat(parts).view(b, h, w))
    return out


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--category", default="disk")
    parser.add_argument("--data-root", default="data/sample")
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}, batch {args.batch}, fibre batch {FIBRE_BATCH} (loop)")
    print(
        "size  images  backbone s  vectorised s (steps)  loop s (steps)  loop/vec  "
        "test ms/img vec  loop"
    )
    for size in args.sizes:
        model, opt, norm = build(size)
        images = norm(load_images(Path(args.data_root), args.category, size))
        batches = list(images.split(args.batch))
        # One warm-up step of each (first-call allocations), not timed.
        epoch_vectorised(model, opt, batches[:1])
        epoch_loop(model, opt, batches[:1])
        t_bb, _ = timed(epoch_backbone, model, batches)
        t_vec, _ = timed(epoch_vectorised, model, opt, batches)
        t_loop, steps = timed(epoch_loop, model, opt, batches)
        model.eval()
        x = images[:8]
        t_test_vec, vec = timed(model.level_log_probs, x)
        t_test_loop, loop = timed(test_loop, model, x)
        for a, b in zip(vec, loop):  # the same numbers, only batched differently
            torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-4)
        print(
            f"{size:4d}  {len(images):6d}  {t_bb:10.2f}  {t_vec:12.2f} ({len(batches):4d})  "
            f"{t_loop:8.2f} ({steps:5d})  {t_loop / t_vec:8.1f}  "
            f"{1000 * t_test_vec / len(x):15.1f}  {1000 * t_test_loop / len(x):5.1f}"
        )


if __name__ == "__main__":
    main()
