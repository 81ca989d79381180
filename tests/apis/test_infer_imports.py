"""Issue 18: scoring one image with tools/infer.py imports no flow or training library."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from adtool.apis import load_config, run_category

CONFIG = "patchcore_effnetlite0_sample"
TINY = [
    "model.backbone.weights=None",
    "train_dataloader.dataset.pipeline.1.size=64",
    "test_dataloader.dataset.pipeline.2.size=64",
]


@pytest.fixture(scope="module")
def trained(tiny_data, tmp_path_factory):
    """A PatchCore (random weights, 64 px) fitted and tested on the tiny sample data."""
    cfg = load_config(CONFIG, TINY)
    for key in ("train_dataloader", "test_dataloader"):
        cfg[key]["batch_size"] = 4
        cfg[key]["dataset"]["data_root"] = str(tiny_data)
    work = tmp_path_factory.mktemp("train")
    run_category(cfg, "tiles", work)
    return work


# ------------------------------------------------ issue 18: what one-image scoring imports

#: Modules that scoring with a PatchCore never needs: FrEIA and scipy.stats (the flow
#: methods build their flows with them), transformers (mmengine's optimiser builder),
#: scipy.ndimage (sample data and AUPRO). ``mmengine.optim`` itself is imported by
#: mmengine's ``BaseModel`` module, the base of every model, so it cannot stay out.
_NOT_FOR_SCORING = ("FrEIA", "scipy.stats", "transformers", "scipy.ndimage", "torchmetrics")

_SCORE_AND_LIST_MODULES = """
import json, runpy, sys
sys.argv = ["tools/infer.py", *sys.argv[1:]]
try:
    runpy.run_path("tools/infer.py", run_name="__main__")
except SystemExit as e:
    assert not e.code, e.code
print(json.dumps([m for m in {names!r} if m in sys.modules]))
"""


def test_scoring_one_image_imports_no_flow_or_training_library(trained, tiny_data, tmp_path):
    work = trained
    image = next((tiny_data / "tiles" / "test" / "crack").glob("*.png"))
    code = _SCORE_AND_LIST_MODULES.format(names=_NOT_FOR_SCORING)
    args = [CONFIG, str(work / "epoch_1.pth"), str(image), "--out", str(tmp_path / "out")]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args, "--cfg-options", *TINY],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = (tmp_path / "out" / "predictions.csv").read_text().strip().splitlines()
    assert len(rows) == 2 and str(image.name) in rows[1]  # header + the image
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_flow_methods_still_register_and_build_their_flows():
    from adtool.registry import MODELS, register_all_modules

    register_all_modules()
    for name in ("FastFlow", "CFlow", "CSFlow", "UFlow", "Flow2DHead", "UShapedFlowHead"):
        assert MODELS.get(name) is not None, name
    head = MODELS.build(dict(type="Flow2DHead", feature_shapes=[(8, 4, 4)], flow_steps=2))
    z, log_det = head([torch.randn(2, 8, 4, 4)])
    assert z[0].shape == (2, 8, 4, 4) and log_det[0].shape == (2,)
    assert type(head.flows[0]).__module__.startswith("FrEIA")
