r"""PaDiM and DFM with real ImageNet EfficientNet-Lite0 weights on the generated sample data.

Measured here (configs/padim/padim_effnetlite0_mvtec.py and configs/dfm/dfm_effnetlite0_mvtec.py
on ``make_sample_dataset(root, seed=0)``, 1 torch thread, the same code path as::

    python tools/train.py CONFIG --data-root data/sample --category all \
        --cfg-options train_dataloader.dataset.type=SampleDataset \
        test_dataloader.dataset.type=SampleDataset

(random weights: the same with ``model.backbone.weights=None``; run time of this file
254 s wall / 71 s CPU with the machine shared at load average 6-11 on 2 cores):

=========  ========  ===========  ===========  ====================================
model      category  image AUROC  pixel AUROC  random weights (image / pixel AUROC)
=========  ========  ===========  ===========  ====================================
PaDiM      disk      0.892        0.998        0.783 / 0.935
PaDiM      fabric    1.000        0.995        0.706 / 0.819
PaDiM      tiles     1.000        0.995        0.422 / 0.718
DFM (fre)  disk      0.992        0.973        0.586 / 0.829
DFM (fre)  fabric    1.000        0.952        0.581 / 0.716
DFM (fre)  tiles     0.861        0.935        0.533 / 0.656
=========  ========  ===========  ===========  ====================================

PaDiM's disk image AUROC is its weak spot: the disk's marker hole sits at a random angle,
and a per-position Gaussian fitted on 40 images has rarely seen it at a given position,
so some normal disks score high; its pixel AUROC (0.998 vs 0.935 random) is what tells
a working PaDiM from a broken one there. DFM's map lives on a 4 x 4 grid, hence its
lower pixel floor. Floors sit a few points below the measured values and above every
random-weight value.

Hard categories (``python tools/make_sample_data.py --hard``), measured with this file
(``pytest tests/quality -m quality -s -k "twill or washer"`` prints each line), 1 torch
thread, the machine shared at load average 8-13 (train s = the fit, inflated by the load):

=========  ========  ===========  ===========  =======  ==============================
model      category  image AUROC  pixel AUROC  train s  random weights (image / pixel)
=========  ========  ===========  ===========  =======  ==============================
PaDiM      twill     0.936        0.989        19.9     0.492 / 0.786
PaDiM      washer    0.931        0.990        21.3     0.447 / 0.790
DFM (fre)  twill     0.744        0.813        11.3     0.553 / 0.602
DFM (fre)  washer    0.806        0.639        9.7      0.456 / 0.725
=========  ========  ===========  ===========  =======  ==============================

DFM scores a whole image from a 4 x 4 grid of pooled features, so defects of 0.05-3 %
of the image barely move it: it is the weakest of the six there, as expected of the
method, while PaDiM's per-position Gaussians find them on both the texture and the
aligned washer. On washer DFM's 4 x 4 map localises no better than a random backbone
(pixel AUROC 0.639 vs 0.725: the coarse cells cover washer and wood alike), so there
its image floor (0.75, random 0.456) is what tells a working DFM from a broken one; its
pixel floor only catches a collapse.
"""

import pytest
from floors import assert_floors, run_floor

from adtool.apis import load_config
from adtool.apis.core import use_dataset

pytestmark = pytest.mark.quality

# (config, category) -> (image AUROC floor, pixel AUROC floor)
FLOORS = {
    ("padim_effnetlite0_mvtec", "disk"): (0.85, 0.97),
    ("padim_effnetlite0_mvtec", "fabric"): (0.95, 0.97),
    ("padim_effnetlite0_mvtec", "tiles"): (0.95, 0.97),
    ("dfm_effnetlite0_mvtec", "disk"): (0.95, 0.92),
    ("dfm_effnetlite0_mvtec", "fabric"): (0.95, 0.9),
    ("dfm_effnetlite0_mvtec", "tiles"): (0.8, 0.9),
    ("padim_effnetlite0_mvtec", "twill"): (0.88, 0.96),
    ("padim_effnetlite0_mvtec", "washer"): (0.88, 0.96),
    ("dfm_effnetlite0_mvtec", "twill"): (0.68, 0.75),
    ("dfm_effnetlite0_mvtec", "washer"): (0.75, 0.58),
}


@pytest.mark.parametrize(("config", "category"), sorted(FLOORS))
def test_statistical_model_reaches_floor(config, category, sample_root, tmp_path):
    cfg = load_config(config)
    use_dataset(cfg, "sample")  # the MVTec config, on the sample data
    for key in ("train_dataloader", "test_dataloader"):
        cfg[key]["dataset"]["data_root"] = str(sample_root)
    result, summary, _ = run_floor(cfg, category, sample_root, tmp_path)
    assert_floors(result, summary, *FLOORS[config, category])
    assert result["n_train"] == 40 and result["n_test"] == 15 + 3 * 8
