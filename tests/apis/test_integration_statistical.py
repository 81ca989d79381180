"""PaDiM and DFM configs end to end from their real files: random weights, tiny data."""

import csv
import json

import pytest
import torch
from integration_helpers import DESIGN_KEYS, FILES
from integration_helpers import tiny as _tiny

from adtool.apis import run_category
from adtool.apis.config_index import list_configs

CONFIGS = {
    "padim_r18_mvtec": "PaDiM",
    "padim_wrn50_mvtec": "PaDiM",
    "padim_effnetlite0_mvtec": "PaDiM",
    "dfm_r50_mvtec": "DFM",
    "dfm_effnetlite0_mvtec": "DFM",
}


def tiny(config: str, data_root, size: int = 64):
    """The real config with random weights, images resized to ``size`` and the sample data.

    DFM's 4x4 pooling of a stride-16 level would leave one cell of a 64 px image, so the
    tiny run pools 2x2 (a 2 x 2 grid) to keep the map spatial.
    """
    options = {"model.backbone.weights": None}
    if config.startswith("dfm"):
        options["model.neck.kernel_size"] = 2
    return _tiny(config, data_root, size, options)


def _scores(path):
    with open(path) as f:
        return [(row["img_path"], float(row["score"])) for row in csv.DictReader(f)]


def test_every_padim_and_dfm_config_is_covered_here():
    on_disk = {p.stem for p in list_configs() if p.parent.name in ("padim", "dfm")}
    assert on_disk == set(CONFIGS)


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_config_fits_tests_writes_outputs_and_reloads(config, tiny_data, tmp_path):
    cfg = tiny(config, tiny_data)
    result = run_category(cfg, "tiles", tmp_path / "fit")
    out = tmp_path / "fit"
    for name in FILES:
        assert (out / name).is_file(), name
    assert list((out / "maps").glob("*/*.png"))
    assert not list(out.glob("**/*.tmp"))
    on_disk = json.loads((out / "results.json").read_text())
    assert DESIGN_KEYS <= set(on_disk) and result == on_disk
    assert on_disk["model"] == CONFIGS[config] and on_disk["config"] == config
    assert on_disk["dataset"] == "sample" and on_disk["category"] == "tiles"
    assert on_disk["n_train"] == 6 and on_disk["n_test"] == 3 + 3 * 2
    assert set(on_disk["per_defect"]) == {"crack", "missing", "spot"}
    assert 0 <= on_disk["image"]["AUROC"] <= 1 and 0 <= on_disk["pixel"]["AUROC"] <= 1
    assert 0 <= on_disk["pixel"]["AUPRO"] <= 1
    c = on_disk["confusion"]
    assert c["TP"] + c["FN"] == 6 and c["TN"] + c["FP"] == 3
    assert on_disk["timing"]["train_s"] > 0 and on_disk["timing"]["test_images_per_s"] > 0
    scores = [s for _, s in _scores(out / "scores.csv")]
    assert len(scores) == 9 and all(s >= 0 and s == s for s in scores)

    ckpt = torch.load(out / "epoch_1.pth", weights_only=False, map_location="cpu")
    state = ckpt["state_dict"]
    assert "optimizer" not in ckpt
    if CONFIGS[config] == "PaDiM":
        d = cfg.model.neck.num_channels
        assert state["neck.indices"].shape == (d,)
        p = state["head.mean"].shape[0]
        assert state["head.mean"].shape == (p, d) and state["head.inv_cov"].shape == (p, d, d)
    else:
        k, dim = state["head.components"].shape
        assert state["head.mean"].shape == (dim,) and state["head.variance"].shape == (k,)
    del ckpt, state

    # The checkpoint alone reproduces every score (statistics, subset, backbone weights).
    tested = run_category(cfg, "tiles", tmp_path / "reload", checkpoint=str(out / "epoch_1.pth"))
    assert _scores(tmp_path / "reload" / "scores.csv") == _scores(out / "scores.csv")
    assert tested["image"] == result["image"] and tested["pixel"] == result["pixel"]
    assert tested["n_train"] is None and tested["timing"]["train_s"] == 0
