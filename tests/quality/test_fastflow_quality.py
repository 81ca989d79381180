"""FastFlow with real ImageNet EfficientNet-Lite0 weights on the generated sample data.

The test trains ``fastflow_effnetlite0_sample`` (128 px, batch 4, paper optimiser) for a
fixed 5 epochs per category (50 Adam steps), without early stopping, validating once.
Measured here (1 thread, a shared 2-core machine; same numbers as the epoch-5 validation
of the README run):

    category  image AUROC  pixel AUROC  train s   random weights: image / pixel AUROC
    disk      0.769        0.989        12.2      0.519 / 0.755
    fabric    1.000        0.997        14.4      0.764 / 0.736
    tiles     1.000        0.995        15.1      0.683 / 0.582

Command: ``python tools/train.py configs/fastflow/fastflow_effnetlite0_sample.py
--category all --data-root <sample root> --cfg-options train_cfg.max_epochs=5
'custom_hooks=[]'`` (74 s wall for the three categories); random weights add
``model.backbone.weights=None``. This test takes about 30 s per category here.

Disk needs more steps (image AUROC 0.89 after 10 epochs, 0.97 after 30, see
configs/fastflow/README.md), hence its lower image floor; pixel AUROC is high early.

Hard categories (``python tools/make_sample_data.py --hard``), the same 5 epochs,
measured with ``pytest tests/quality -m quality -s -k "twill or washer"`` (which prints
each line) on the machine shared at load average 8-13 (times inflated 2-4x):

    category  image AUROC  pixel AUROC  train s   random weights: image / pixel AUROC
    twill     0.811        0.948        28.7      0.422 / 0.656
    washer    0.622        0.911        29.6      0.356 / 0.616

At 128 px a thin scratch is about a pixel wide: after 5 epochs FastFlow finds the
texture and shape defects but few scratches (image AUROC 0.52 / 0.59 on them), and on
washer the notches only half the time; the sample config's longer schedule is not run
here to keep ``make test`` short.
The floors sit below the measured values and above what a random backbone gives.
"""

import pytest
from floors import assert_floors, run_floor

pytestmark = pytest.mark.quality

EPOCHS = 5
# category -> (image AUROC floor, pixel AUROC floor)
FLOORS = {
    "disk": (0.70, 0.97),
    "fabric": (0.95, 0.97),
    "tiles": (0.95, 0.97),
    "twill": (0.75, 0.90),
    "washer": (0.57, 0.86),
}
SHORT = {"train_cfg.max_epochs": EPOCHS, "train_cfg.val_interval": EPOCHS, "custom_hooks": []}


@pytest.mark.parametrize("category", list(FLOORS))
def test_fastflow_effnetlite0_reaches_floor(category, sample_root, tmp_path):
    config = "fastflow_effnetlite0_sample"
    result, summary, _ = run_floor(config, category, sample_root, tmp_path, SHORT)
    assert result["n_train"] == 40 and result["n_test"] == 15 + 3 * 8
    assert result["train"]["epochs"] == EPOCHS and result["train"]["iters"] == EPOCHS * 10
    assert_floors(result, summary, *FLOORS[category])
