"""Metric functions against hand-computed values and a brute-force AUPRO."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from adtool.evaluation.functional import (
    aupro,
    f1_max,
    image_aupr,
    image_auroc,
    per_defect_auroc,
    pixel_auroc,
    pixel_f1_max,
)

HAND_SCORES = [0.1, 0.4, 0.35, 0.8]
HAND_LABELS = [0, 0, 1, 1]


def test_image_auroc_known_values():
    assert image_auroc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == pytest.approx(1.0)
    assert image_auroc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == pytest.approx(0.0)
    # 0.35 beats 0.1 but not 0.4; 0.8 beats both: 3 of 4 pairs.
    assert image_auroc(HAND_SCORES, HAND_LABELS) == pytest.approx(0.75)
    assert image_auroc(torch.tensor([0.5, 0.5]), torch.tensor([0, 1])) == pytest.approx(0.5)


def test_large_scores_are_not_squashed_by_sigmoid():
    # torchmetrics would sigmoid these to 1.0 (all tied, AUROC 0.5) without the rescale.
    scores = np.array([100.0, 101.0, 102.0, 103.0])
    assert image_auroc(scores, [0, 0, 1, 1]) == pytest.approx(1.0)
    assert image_aupr(scores, [0, 0, 1, 1]) == pytest.approx(1.0)


def test_image_aupr_and_f1_max_known_values():
    # Ranked: 0.8 (+) P=1 R=.5; 0.4 (-); 0.35 (+) P=2/3 R=1 -> AP = .5 * 1 + .5 * 2/3.
    assert image_aupr(HAND_SCORES, HAND_LABELS) == pytest.approx(0.5 + 0.5 * 2 / 3)
    # Best at threshold 0.35: P=2/3, R=1 -> F1 = 0.8.
    assert f1_max(HAND_SCORES, HAND_LABELS) == pytest.approx(0.8)


def test_one_class_returns_none():
    scores, normal, anomalous = [0.1, 0.5, 0.9], [0, 0, 0], [1, 1, 1]
    for fn in (image_auroc, image_aupr, f1_max):
        assert fn(scores, normal) is None
        assert fn(scores, anomalous) is None
    maps = torch.rand(2, 8, 8)
    assert pixel_auroc(maps, torch.zeros(2, 8, 8)) is None
    assert pixel_auroc(maps, torch.ones(2, 8, 8)) is None
    assert pixel_f1_max(maps, torch.zeros(2, 8, 8)) is None
    assert aupro(maps, torch.zeros(2, 8, 8)) is None
    assert aupro(maps, torch.ones(2, 8, 8)) is None
    assert per_defect_auroc(scores, normal, ["good"] * 3) == {}
    assert per_defect_auroc(scores, anomalous, ["crack"] * 3) == {
        "crack": {"image_AUROC": None, "n": 3}
    }


def test_pixel_auroc_known_values():
    maps = torch.tensor([[[0.1, 0.9], [0.2, 0.3]]], dtype=torch.float16)
    assert pixel_auroc(maps, torch.tensor([[[0, 1], [0, 0]]])) == pytest.approx(1.0)
    # 0.3 beats 0.1 and 0.2 but not 0.9.
    assert pixel_auroc(maps, np.array([[[0, 0], [0, 1]]], np.uint8)) == pytest.approx(2 / 3)
    # Maps far outside [0, 1] keep their ranking.
    assert pixel_auroc(maps.float() * 1000 + 50, torch.tensor([[[0, 1], [0, 0]]])) == 1.0


def test_pixel_f1_max_threshold_in_map_units():
    maps = torch.tensor([[[10.0, 40.0], [20.0, 30.0]]])
    f1, threshold = pixel_f1_max(maps, torch.tensor([[[0, 1], [0, 1]]]))
    assert f1 == pytest.approx(1.0)
    assert threshold == pytest.approx(30.0, abs=1e-3)


def _normal_background(shape, seed=0):
    return np.random.default_rng(seed).uniform(0.0, 0.5, size=shape).astype(np.float32)


def test_aupro_perfect_map_is_one():
    masks = np.zeros((3, 32, 32), np.uint8)
    masks[0, 4:10, 4:10] = 1
    masks[1, 20:22, 5:30] = 1
    maps = _normal_background(masks.shape) + masks
    assert aupro(maps, masks) == pytest.approx(1.0)


def test_aupro_noise_is_half_the_fpr_limit():
    # A map independent of the mask has PRO(FPR) ~= FPR: area 0.3**2 / 2, normalised 0.15.
    rng = np.random.default_rng(0)
    masks = np.zeros((20, 64, 64), np.uint8)
    masks[:, 10:30, 10:30] = 1
    masks[:, 40:44, 40:60] = 1
    maps = rng.random(masks.shape).astype(np.float32)
    assert aupro(maps, masks) == pytest.approx(0.15, abs=0.01)
    assert aupro(maps, masks, fpr_limit=0.1) == pytest.approx(0.05, abs=0.01)


def test_aupro_averages_regions_not_pixels():
    # A small region found, a 10x larger one missed: PRO is 0.5 at every FPR, while a
    # pixel-weighted overlap would give 10 / 110.
    masks = np.zeros((1, 32, 32), np.uint8)
    masks[0, 2:4, 2:7] = 1  # 10 pixels, detected
    masks[0, 15:25, 15:25] = 1  # 100 pixels, missed
    maps = _normal_background(masks.shape)
    maps[0, 2:4, 2:7] = 1.0
    maps[0, 15:25, 15:25] = -1.0
    assert aupro(maps, masks) == pytest.approx(0.5, abs=1e-9)


def test_aupro_regions_are_four_connected_and_per_image():
    maps = _normal_background((2, 8, 8))
    masks = np.zeros((2, 8, 8), np.uint8)
    # Image 0: a 2x2 block and a pixel touching it diagonally: two 4-connected regions.
    masks[0, 0:2, 0:2] = 1
    masks[0, 2, 2] = 1
    maps[0, 0:2, 0:2] = -1.0
    maps[0, 2, 2] = 1.0
    assert aupro(maps[:1], masks[:1]) == pytest.approx(0.5)  # 8-connected would give 0.2
    # Image 1: a 1-pixel region over the same place as a 3x3 region of image 2; found / missed.
    masks2 = np.zeros((2, 8, 8), np.uint8)
    masks2[0, 4, 4] = 1
    masks2[1, 3:6, 3:6] = 1
    maps2 = _normal_background((2, 8, 8), seed=1)
    maps2[0, 4, 4] = 1.0
    maps2[1, 3:6, 3:6] = -1.0
    assert aupro(maps2, masks2) == pytest.approx(0.5)  # one 3D component would give 0.1


def test_aupro_step_at_known_fpr():
    # Normal pixels evenly spaced in [0, 1): exactly 10% are >= 0.9. The region (value 0.9)
    # is found from FPR 0.1 on: area 0.3 - 0.1 = 0.2, normalised 2/3; none below 0.1.
    n = 1000
    maps = np.zeros((1, 1, n + 5), np.float32)
    maps[0, 0, :n] = np.arange(n) / n
    maps[0, 0, n:] = 0.9
    masks = np.zeros_like(maps, dtype=np.uint8)
    masks[0, 0, n:] = 1
    assert aupro(maps, masks) == pytest.approx(2 / 3, abs=2e-3)
    assert aupro(maps, masks, fpr_limit=0.05) == pytest.approx(0.0, abs=1e-9)


def _aupro_brute_force(maps, masks, fpr_limit=0.3):
    """Every distinct map value as a threshold, region by region."""
    masks = masks > 0
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = ndimage.generate_binary_structure(2, 1)
    regions, n_regions = ndimage.label(masks, structure=structure)
    fprs, pros = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        pred = maps >= t
        fprs.append((pred & ~masks).sum() / (~masks).sum())
        pros.append(np.mean([pred[regions == r].mean() for r in range(1, n_regions + 1)]))
        if fprs[-1] > fpr_limit:
            break
    fpr, pro = np.array(fprs), np.array(pros)
    inside = np.searchsorted(fpr, fpr_limit, side="right")
    x, y = fpr[:inside], pro[:inside]
    if inside < len(fpr):
        x = np.append(x, fpr_limit)
        y = np.append(y, np.interp(fpr_limit, fpr[inside - 1 : inside + 1], pro[inside - 1 :]))
    return np.trapezoid(y, x) / fpr_limit


@pytest.mark.parametrize("levels", [None, 50])
def test_aupro_matches_brute_force(levels):
    rng = np.random.default_rng(3)
    masks = np.zeros((4, 32, 32), np.uint8)
    masks[:2, 5:15, 5:15] = 1
    masks[2, 2:4, 20:30] = 1
    masks[3, 25:30, 25:30] = 1
    maps = ndimage.gaussian_filter(rng.random(masks.shape), (0, 2, 2)) + 0.05 * masks
    if levels is not None:  # many ties, as with float16 maps
        maps = np.round(maps * levels) / levels
    maps = maps.astype(np.float32)
    expected = _aupro_brute_force(maps, masks)
    assert 0.2 < expected < 0.9  # neither trivial case
    assert aupro(torch.from_numpy(maps), torch.from_numpy(masks)) == pytest.approx(
        expected, abs=1e-3
    )


def test_per_defect_auroc_against_normals():
    scores = [0.1, 0.2, 0.3, 0.9, 0.8, 0.25, 0.05]
    labels = [0, 0, 0, 1, 1, 1, 1]
    defects = ["good", "good", "good", "crack", "crack", "scratch", "scratch"]
    result = per_defect_auroc(scores, labels, defects)
    assert list(result) == ["crack", "scratch"]
    assert result["crack"] == {"image_AUROC": pytest.approx(1.0), "n": 2}
    # 0.25 beats 0.1 and 0.2; 0.05 beats none: 2 of 6 pairs.
    assert result["scratch"]["image_AUROC"] == pytest.approx(2 / 6)
    assert result["scratch"]["n"] == 2
