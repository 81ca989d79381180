"""STFPM and Reverse Distillation with real EfficientNet-Lite0 weights on the sample data.

Measured here, 1 torch thread, with this file (each test prints its line):
``.venv/bin/pytest tests/quality/test_stfpm_rd_quality.py -m quality -s``. The STFPM
sample config trains at 128 px, batch 4, at most 12 epochs with early stopping on
validation image AUROC; the Reverse Distillation one at 256 px, batch 4, a fixed 20
epochs (configs/*/README.md):

========================  ========  ===========  ===========  ======  =======
config                    category  image AUROC  pixel AUROC  epochs  train s
========================  ========  ===========  ===========  ======  =======
stfpm_effnetlite0_sample  disk      0.950        0.993        12      228.4 *
stfpm_effnetlite0_sample  fabric    1.000        0.996        7       66.3 *
stfpm_effnetlite0_sample  tiles     0.994        0.996        12      153.7 *
reverse_distillation_...  disk      0.922        0.998        20      144.6
reverse_distillation_...  fabric    1.000        0.997        20      136.8
reverse_distillation_...  tiles     0.983        0.992        20      138.5
========================  ========  ===========  ===========  ======  =======

(* STFPM with ``loss_weight=2.0``, on a machine shared with five other jobs: times are
inflated several-fold; with 1.0 the times were 38.8 / 23.3 / 40.2 s.)

STFPM takes ~2 minutes for the three categories, Reverse Distillation ~7: a student or
decoder trained from scratch needs its epochs.

A broken model lands below the floors. With random encoder/teacher weights (the 128 px
settings, ``model.teacher.weights=None`` / ``model.backbone.weights=None``), disk / fabric
/ tiles: STFPM image AUROC 0.51 / 0.44 / 0.66, pixel AUROC 0.83 / 0.59 / 0.77; RD image
AUROC 0.47 / 0.49 / 0.59, pixel AUROC 0.59 / 0.42 / 0.43.

Hard categories (``python tools/make_sample_data.py --hard``), measured with
``pytest tests/quality -m quality -s -k "twill or washer"`` on the machine shared at load
average 8-13 (train times inflated 2-4x; idle, STFPM takes ~40 s and RD ~140 s):

=========================================  ========  ===========  ===========  ======  =======
config                                     category  image AUROC  pixel AUROC  epochs  train s
=========================================  ========  ===========  ===========  ======  =======
stfpm_effnetlite0_sample                   twill     0.764        0.969        12      175.4
stfpm_effnetlite0_sample                   washer    0.853        0.993        9       253.5
reverse_distillation_effnetlite0_sample    twill     0.686        0.969        20      839.3
reverse_distillation_effnetlite0_sample    washer    0.989        0.988        20      658.4
=========================================  ========  ===========  ===========  ======  =======

Random teacher weights for STFPM there (``model.teacher.weights=None``, same run): image /
pixel AUROC 0.497 / 0.456 (twill), 0.475 / 0.754 (washer). Reverse Distillation is tested
on twill only (its runs are the longest; on washer it scores near 1 anyway); its
random-weight run on the hard categories was not measured, the easy-category contrast
above stands for it.

STFPM with anomalib's batch-summed loss (``reduction='sum', loss_weight=1.0``, issue 22),
the same command, load 2-3: disk 0.911 / 0.990 (early stop at epoch 8, 40.8 s), fabric
1.000 / 0.996 (7), tiles 1.000 / 0.997 (12), twill 0.781 / 0.972 (12), washer
0.869 / 0.992 (12) image / pixel AUROC; Reverse Distillation disk 0.922 / 0.998 (20, now
validating every 10 epochs). Disk stops earlier than before (its AUROC holds at 0.93-0.95
from epoch 3 to 7, then rises to 0.98 by epoch 12), so it lands lower than the 0.950 above;
the floors still hold with margin.

Floors: STFPM on all five categories (~30 s each); Reverse Distillation on disk (easy)
and twill (hard) only, ~100 s each on an idle machine: its fabric and tiles numbers above
stay as measurements, not as tests, to keep `make test` in its budget.
"""

import pytest
from floors import assert_floors, run_floor

pytestmark = pytest.mark.quality

# (config, category) -> (image AUROC floor, pixel AUROC floor); measured numbers above.
FLOORS = {
    ("stfpm_effnetlite0_sample", "disk"): (0.85, 0.97),
    ("stfpm_effnetlite0_sample", "fabric"): (0.95, 0.97),
    ("stfpm_effnetlite0_sample", "tiles"): (0.90, 0.97),
    ("reverse_distillation_effnetlite0_sample", "disk"): (0.85, 0.97),
    ("stfpm_effnetlite0_sample", "twill"): (0.70, 0.93),
    ("stfpm_effnetlite0_sample", "washer"): (0.80, 0.96),
    ("reverse_distillation_effnetlite0_sample", "twill"): (0.63, 0.93),
}


@pytest.mark.parametrize(("config", "category"), list(FLOORS))
def test_distillation_effnetlite0_reaches_floor(config, category, sample_root, tmp_path):
    result, summary, cfg = run_floor(config, category, sample_root, tmp_path)
    assert result["n_train"] == 40 and result["n_test"] == 15 + 3 * 8
    assert 1 <= result["train"]["epochs"] <= cfg.train_cfg.max_epochs
    assert_floors(result, summary, *FLOORS[(config, category)])
