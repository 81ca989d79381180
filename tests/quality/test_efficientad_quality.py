"""EfficientAD-S (CPU-sized sample config) with a teacher distilled here from the real
EfficientNet-Lite0 weights on natural photos, on the sample data: one easy and one hard
category. On the easy one (disk) the floors sit above what a random PDN teacher reaches,
so they guard the teacher's value; on the hard one (twill) only the pipeline (below).

The teacher is the shipped asset
``tests/assets/efficientad/pdn_small-w0.25-c128_effnetlite0.pth`` (~0.2 M parameters,
800 KB), distilled offline from the bundled EfficientNet-Lite0 on the 18 natural
photos that ship with scikit-image / scikit-learn, deterministic from seed 0 (its
``meta`` holds the recipe and the first losses)::

    python tools/make_sample_data.py --natural data/natural
    python tools/distill_teacher.py data/natural --width 0.25 --out-channels 128 \\
        --image-size 128 --steps 200 --batch-size 16 --lr 1e-3 --crop-scale 0.3 \\
        --source-scale 1 --source-levels 1,2 --seed 0 --threads 1 \\
        --out tests/assets/efficientad/pdn_small-w0.25-c128_effnetlite0.pth

(527 s on one shared thread, loss 1.01 -> 0.51). That is longer than this file's budget,
so ``test_distillation_reproduces_the_shipped_teacher`` re-runs the recipe's first steps
and checks that the tool gives the recorded losses and that they go down. Each category
then trains the config's 400 steps with the penalty on the same natural photos
(``model.penalty_dir``). Measured here, 1 torch thread, with
``pytest tests/quality/test_efficientad_quality.py -m quality -s``:

========  =====================  ===========  ===========  =====  =====  =======
category  teacher                image AUROC  pixel AUROC  AUPRO  steps  train s
========  =====================  ===========  ===========  =====  =====  =======
disk      shipped (distilled)    0.922        0.959        0.849  400    149
disk      random PDN             0.789        0.935        0.776  400    138
twill     shipped (distilled)    0.433        0.825        0.544  400    153
twill     random PDN             0.600        0.910        0.737  400    119
========  =====================  ===========  ===========  =====  =====  =======

(load average 8-11 on 2 cores from other jobs: the seconds are inflated several times.)

The random rows are the same runs with ``model.teacher.weights=None``. On disk (easy)
the distilled teacher beats the random one (image AUROC 0.92 vs 0.79, pixel 0.959 vs
0.935) and the floors sit between the two. On twill (hard: subtle defects in a fine
woven texture) it does not, so the twill floors guard the pipeline only (maps, border,
quantile normalisation, held-out split), not the teacher's value. Why (issue 13,
configs/efficientad/README.md "Twill: diagnosis"): at 128 px the weave has a 4-pixel
period and even the teacher's own features separate the defects no better than a random
PDN's (nearest-neighbour check 0.82 vs 0.85 image AUROC), while at 256 px they do
(0.94 vs 0.87); the student also needs more than 400 steps to keep what the teacher sees
(local map 0.56 -> 0.71 image AUROC at 1200 steps), and the autoencoder's map is weak on
the weave. At 256 px (one run each) the distilled teacher gave 0.886 / 0.988 (image /
pixel AUROC) on twill, a random one 0.897 / 0.983: not yet above random on image AUROC,
and beyond this file's time budget on a CPU.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from floors import assert_floors, run_floor

from adtool.datasets.hf import make_natural_image_folder
from adtool.models.anomaly.efficientad.distill import distill_teacher

pytestmark = pytest.mark.quality

CONFIG = "efficientad_s_sample"
ASSETS = Path(__file__).parents[1] / "assets" / "efficientad"
TEACHER = ASSETS / "pdn_small-w0.25-c128_effnetlite0.pth"
# category -> (image AUROC floor, pixel AUROC floor); measured numbers above.
# disk: above the random teacher (0.789 / 0.935); twill: the pipeline only.
FLOORS = {"disk": (0.85, 0.945), "twill": (0.38, 0.78)}
REPRODUCE_STEPS = 12


@pytest.fixture(scope="module")
def natural_dir(tmp_path_factory):
    return make_natural_image_folder(tmp_path_factory.mktemp("natural"))


@pytest.mark.parametrize("category", list(FLOORS))
def test_efficientad_s_sample_reaches_floor(category, sample_root, natural_dir, tmp_path):
    overrides = {"model.teacher.weights": str(TEACHER), "model.penalty_dir": str(natural_dir)}
    result, summary, cfg = run_floor(CONFIG, category, sample_root, tmp_path, overrides)
    assert result["train"]["iters"] == cfg.train_cfg.max_iters
    assert result["model_info"]["teacher"] == str(TEACHER)
    assert result["model_info"]["penalty"] == f"on: 18 images from {natural_dir}"
    assert result["model_info"]["validation"].startswith("4 of 40 training images")
    assert_floors(result, summary, *FLOORS[category])


def test_distillation_reproduces_the_shipped_teacher(natural_dir, tmp_path):
    meta = torch.load(TEACHER, weights_only=True)["meta"]
    result = distill_teacher(
        natural_dir,
        size=meta["size"],
        width=meta["width"],
        out_channels=meta["out_channels"],
        image_size=meta["image_size"],
        batch_size=meta["batch_size"],
        lr=meta["lr"],
        crop_scale=meta["crop_scale"],
        source_scale=meta["source_scale"],
        source_levels=tuple(meta["source_levels"]),
        stat_batches=meta["stat_batches"],
        seed=meta["seed"],
        steps=REPRODUCE_STEPS,
        out=tmp_path / "teacher.pth",
        log_every=0,
    )
    losses = result["losses"]
    print(f"first {REPRODUCE_STEPS} steps: {np.round(losses, 4).tolist()}")
    recorded = meta["first_losses"][: min(REPRODUCE_STEPS, len(meta["first_losses"]))]
    assert losses[: len(recorded)] == pytest.approx(recorded, rel=1e-3, abs=1e-3)
    assert np.mean(losses[-4:]) < np.mean(losses[:4]), losses
