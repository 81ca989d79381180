"""DSR, trained from scratch on the sample data (easy and hard), no ImageNet VQ model.

MEASURED_TABLE

A broken model lands below the floors. UNTRAINED_CONTRAST
"""

import pytest
from floors import assert_floors, run_floor

pytestmark = pytest.mark.quality

# category -> (image AUROC floor, pixel AUROC floor); measured numbers above.
FLOORS = {"disk": (0.0, 0.0), "twill": (0.0, 0.0)}
CONFIG = "dsr_sample"


@pytest.mark.parametrize("category", list(FLOORS))
def test_dsr_reaches_floor(category, sample_root, tmp_path):
    result, summary, cfg = run_floor(CONFIG, category, sample_root, tmp_path)
    assert result["n_train"] == 40 and result["n_test"] == 15 + 3 * 8
    assert result["train"]["epochs"] == cfg.train_cfg.max_epochs
    # No ImageNet VQ model here: the named first stage trained it on the category.
    assert result["model_info"]["vq"].startswith("trained here on 40 training images")
    assert_floors(result, summary, *FLOORS[category])
