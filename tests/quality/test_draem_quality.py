"""DRAEM, trained from scratch on the sample data (easy and hard), no texture folder.

Measured here (1 thread, a 2-core machine shared with another engineer's jobs) with this
file, which prints each line: ``.venv/bin/pytest tests/quality/test_draem_quality.py -m
quality -s``. The config ``draem_sample`` trains at 64 px, widths 16 / 16, torch's default
weight initialisation, batch 8, Adam lr 1e-3 (x0.2 at epochs 32 and 36), a fixed 40
epochs (200 steps); there is no DTD on this machine, so the anomalies are filled with the
procedural colour Perlin noise (the fallback the results name); map = softmax anomaly
channel, score = max of its 9 x 9 mean:

========  ===========  ===========  =====  ======  =======
category  image AUROC  pixel AUROC  AUPRO  epochs  train s
========  ===========  ===========  =====  ======  =======
disk      0.753        0.970        0.906  40      95.6
twill     0.511        0.822        0.463  40      83.3
========  ===========  ===========  =====  ======  =======

The whole file took 201 s (data generation included) on the shared machine.

twill is one of the hard categories (small, low-contrast defects on a texture): DRAEM
localises them (pixel AUROC 0.82 against 0.52 untrained) but its image score does not
separate twill's images (0.51; the untrained model scored 0.66 there, which I read as
chance on 39 images rather than detection), so twill's image floor only catches a score gone far the
wrong way; its pixel floor is the real check. washer, the other hard category, reached
image / pixel AUROC 0.572 / 0.567 with the same config (a separate run; not tested here,
to keep the file near 3 minutes).

A broken model lands below the floors. Untrained (``optim_wrapper.optimizer.lr=0``, one
epoch, so only the batch-norm statistics move), disk / twill: image AUROC 0.40 / 0.66,
pixel AUROC 0.49 / 0.52, AUPRO 0.13 / 0.10.
"""

import pytest
from floors import assert_floors, run_floor

pytestmark = pytest.mark.quality

# category -> (image AUROC floor, pixel AUROC floor); measured numbers above.
# disk's image floor was 0.65: on a fresh install on 2026-12-07 (torch pinned, the other
# packages as pip resolved them) the same seeded run gave 0.644 / 0.946 / 0.887 at the
# session's starting commit and after it alike, so the package versions moved it; 0.60
# stays far above the untrained 0.40, and the pixel floor is unchanged.
FLOORS = {"disk": (0.60, 0.90), "twill": (0.35, 0.72)}
CONFIG = "draem_sample"


@pytest.mark.parametrize("category", list(FLOORS))
def test_draem_reaches_floor(category, sample_root, tmp_path):
    result, summary, cfg = run_floor(CONFIG, category, sample_root, tmp_path)
    assert result["n_train"] == 40 and result["n_test"] == 15 + 3 * 8
    assert result["train"]["epochs"] == cfg.train_cfg.max_epochs
    assert result["model_info"]["anomaly_source"]
    assert_floors(result, summary, *FLOORS[category])
