"""GANomaly, trained from scratch on the sample data (easy and hard); image scores only.

Measured here (1 thread, a shared 2-core machine) with this file, which prints each line:
``.venv/bin/pytest tests/quality/test_ganomaly_quality.py -m quality -s``. The config
``ganomaly_sample`` trains at 64 px, latent 100, 16 base channels, batch 8, the paper's two
Adam optimisers and loss weights, a fixed 30 epochs (150 steps per network), validating once:

========  ===========  ======  =======  =================
category  image AUROC  epochs  train s  untrained AUROC
========  ===========  ======  =======  =================
disk      0.597        30      65.6     0.306
twill     0.600        30      45.9     0.525
========  ===========  ======  =======  =================

twill is one of the hard categories (small, low-contrast defects on a texture).
"Untrained" is the same config with both learning rates at 0 for one epoch
(``optim_wrapper.generator.optimizer.lr=0.0 optim_wrapper.discriminator.optimizer.lr=0.0
train_cfg.max_epochs=1``): only the batch-norm statistics move. GANomaly is weak on this
data (one global latent vector per image; the paper's setting is 32 px whole-object
images), so the floors are low but above the untrained model: a stub, a constant score or
an unconnected loss lands below them. The score is noisy over epochs (15 epochs gave
disk / twill 0.631 / 0.467).

On 2026-12-04 the same code (the landed commit e7958a4 as well as later ones) gave twill
0.5444 on this machine's fresh venv, 0.06 below the table and barely above untrained
(0.525): twill's image score does not tell trained from untrained GANomaly reliably, so
its floor (0.50) only catches a score gone the wrong way; disk's floor is the real check.
"""

import pytest
from floors import assert_floors, run_floor

pytestmark = pytest.mark.quality

# category -> image AUROC floor; measured numbers above.
FLOORS = {"disk": 0.52, "twill": 0.50}
CONFIG = "ganomaly_sample"


@pytest.mark.parametrize("category", list(FLOORS))
def test_ganomaly_reaches_floor(category, sample_root, tmp_path):
    result, summary, cfg = run_floor(CONFIG, category, sample_root, tmp_path)
    assert result["n_train"] == 40 and result["n_test"] == 15 + 3 * 8
    assert result["pixel"] is None  # image-only method
    assert result["train"]["epochs"] == cfg.train_cfg.max_epochs
    assert_floors(result, summary, FLOORS[category], None)
