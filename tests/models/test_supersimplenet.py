"""SuperSimpleNet: feature-level anomalies, truncated L1, upscaling, heads, mode choice."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from adtool.datasets import Folder
from adtool.models.anomaly.supersimplenet.parts import (
    FeatureAnomalyGenerator,
    SegDetHead,
    UpscaleConcatNeck,
    truncated_l1_loss,
)
from adtool.registry import MODELS
from adtool.structures import AnomalyDataSample


def _model(**kwargs):
    torch.manual_seed(0)
    cfg = dict(
        type="SuperSimpleNet",
        data_preprocessor=dict(type="AnomalyDataPreprocessor", mean=[127.5] * 3, std=[127.5] * 3),
        backbone=dict(type="TimmBackbone", arch="resnet18", out_indices=(2, 3), weights=None),
        head=dict(type="SegDetHead", hidden_channels=16, cls_channels=8),
    )
    return MODELS.build(dict(cfg, **kwargs))


# ---------------------------------------------------------------------------- generator


def test_generator_changes_features_only_inside_its_masks():
    torch.manual_seed(0)
    gen = FeatureAnomalyGenerator(noise_std=0.5, threshold=0.2, empty_prob=0.5)
    feats = torch.randn(16, 8, 24, 24)
    out, masks, labels = gen(feats, torch.zeros(16, 1, 24, 24), torch.zeros(16))
    assert out.shape == (32, 8, 24, 24) and masks.shape == (32, 1, 24, 24)
    changed = (out != torch.cat((feats, feats))).any(1, keepdim=True)
    assert torch.equal(changed, masks.bool())  # every masked position moves, no other
    assert 0.05 < masks.mean() < 0.6  # Perlin masks at threshold 0.2, half emptied
    assert torch.equal(labels, masks.flatten(1).amax(1))
    assert 0 < labels.sum() < 32  # some maps stay normal (empty_prob)


def test_generator_noise_has_the_configured_std_and_zero_mean():
    torch.manual_seed(0)
    gen = FeatureAnomalyGenerator(noise_std=0.015, threshold=-10.0, empty_prob=0.0)
    feats = torch.randn(4, 64, 32, 32)
    out, masks, _ = gen(feats, torch.zeros(4, 1, 32, 32), torch.zeros(4))
    assert bool(masks.all())  # threshold below the noise: everything masked
    diff = out - torch.cat((feats, feats))
    assert diff.std().item() == pytest.approx(0.015, rel=0.01)
    assert abs(diff.mean().item()) < 1e-4


def test_generator_without_overlap_spares_labelled_defects():
    torch.manual_seed(0)
    gen = FeatureAnomalyGenerator(noise_std=1.0, threshold=-10.0, empty_prob=0.0, overlap=False)
    feats = torch.randn(2, 4, 8, 8)
    defect = torch.zeros(2, 1, 8, 8)
    defect[0, :, :4] = 1
    out, masks, labels = gen(feats, defect, torch.tensor([1.0, 0.0]))
    diff = (out - torch.cat((feats, feats))).abs().amax(1)
    assert not diff[0, :4].any() and diff[0, 4:].all()  # noise outside the defect only
    assert bool(masks.all()) and labels.tolist() == [1.0, 1.0, 1.0, 1.0]


# ---------------------------------------------------------------------------- losses


def test_truncated_l1_matches_a_direct_computation():
    torch.manual_seed(0)
    logits = torch.randn(3, 1, 5, 5) * 2
    masks = (torch.rand(3, 1, 5, 5) > 0.7).float()
    s, m = logits.flatten().tolist(), masks.flatten().tolist()
    normal = [max(0.0, x + 0.5) for x, y in zip(s, m) if y == 0]
    anomalous = [max(0.0, 0.5 - x) for x, y in zip(s, m) if y == 1]
    expected = sum(normal) / len(normal) + sum(anomalous) / len(anomalous)
    assert truncated_l1_loss(logits, masks, 0.5).item() == pytest.approx(expected, rel=1e-5)
    # No anomalous position: only the normal mean (the official code adds 0).
    none = torch.zeros_like(masks)
    direct = F.relu(logits + 0.5).mean().item()
    assert truncated_l1_loss(logits, none).item() == pytest.approx(direct, rel=1e-5)
    # Positions with zero weight are left out.
    valid = torch.zeros_like(masks)
    valid[0] = 1
    only0 = truncated_l1_loss(logits[:1], masks[:1])
    assert truncated_l1_loss(logits, masks, valid=valid).item() == pytest.approx(only0.item())
    # Separated beyond the margin: no loss.
    assert truncated_l1_loss(masks * 2 - 1, masks).item() == 0.0


# ---------------------------------------------------------------------------- networks


def test_neck_upscales_to_twice_the_first_level_then_averages_3x3():
    torch.manual_seed(0)
    a, b = torch.randn(2, 3, 4, 4), torch.randn(2, 5, 2, 2)
    out = UpscaleConcatNeck()([a, b])
    assert out.shape == (2, 8, 8, 8)
    up = torch.cat(
        [F.interpolate(t, size=(8, 8), mode="bilinear", align_corners=True) for t in (a, b)], 1
    )
    # Interior position: the plain mean of its 3 x 3 neighbourhood; corner: 4 of 9 (zero pad).
    assert out[:, :, 3, 4].allclose(up[:, :, 2:5, 3:6].mean((2, 3)), atol=1e-6)
    assert out[:, :, 0, 0].allclose(up[:, :, :2, :2].sum((2, 3)) / 9, atol=1e-6)


def test_head_outputs_and_stop_gradient():
    torch.manual_seed(0)
    feats = torch.randn(4, 6, 8, 8, requires_grad=True)
    for stop_grad in (True, False):
        head = SegDetHead(6, hidden_channels=8, cls_channels=4, stop_grad=stop_grad)
        seg, score = head(feats)
        assert seg.shape == (4, 1, 8, 8) and score.shape == (4,)
        score.sum().backward()
        grad = head.seg[0].weight.grad
        reached = grad is not None and bool(grad.abs().sum() > 0)
        assert reached is (not stop_grad)
    # The image logit reads max and mean of the conv output and of the map.
    assert head.cls_fc.in_features == 2 * 4 + 2


def test_model_outputs_losses_and_channels():
    model = _model()
    assert model.adaptor.in_channels == 128 + 256  # resnet18 layers 2 + 3
    inputs = torch.randn(2, 3, 64, 64)
    scores, maps = model.anomaly_outputs(inputs)
    assert maps.shape == (2, 64, 64) and scores.shape == (2,)
    assert bool(((scores > 0) & (scores < 1)).all())  # sigmoid of the image logit
    samples = [AnomalyDataSample(gt_label=0), AnomalyDataSample(gt_label=0)]
    losses = model.loss(inputs, samples)
    assert set(losses) == {"loss_l1", "loss_seg_focal", "loss_cls_focal"}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())


def test_labelled_mask_is_downsampled_bilinearly_then_cut_at_half():
    model = _model()
    mask = torch.zeros(64, 64, dtype=torch.uint8)
    mask[:32, :32] = 1
    samples = [AnomalyDataSample(gt_label=1, gt_mask=mask), AnomalyDataSample(gt_label=1)]
    masks, labels, valid = model._targets(torch.zeros(2, 3, 64, 64), samples, (16, 16))
    assert labels.tolist() == [1.0, 1.0]
    assert masks[0, 0, :8, :8].all() and not masks[0, 0, 8:].any()
    assert valid.flatten().tolist() == [1.0, 0.0]  # no mask: no map target


# ---------------------------------------------------------------------------- mode


def _png(path: Path, value: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 16), value, np.uint8)).save(path)


def test_mode_comes_from_the_training_set(tmp_path):
    base = tmp_path / "part"
    for i in range(4):
        _png(base / "good" / f"n{i}.png")
    _png(base / "defect" / "d0.png", 200)
    _png(base / "masks" / "d0_mask.png", 255)
    model = _model()
    assert model.results_info()["mode"].startswith("not trained")
    normal_only = Folder(tmp_path, "part", "train")
    model.before_train(SimpleNamespace(dataset=normal_only))
    assert model.mode == "unsupervised" and model.results_info()["n_anomalous_train"] == 0

    _png(base / "labelled" / "t0.png", 200)
    _png(base / "labelled" / "t1.png", 200)
    _png(base / "masks" / "t0_mask.png", 255)
    _png(base / "masks" / "t1_mask.png", 255)
    labelled = Folder(tmp_path, "part", "train", abnormal_train_dir="labelled")
    assert sorted(labelled.get_data_info(i)["gt_label"] for i in range(len(labelled))) == [
        0,
        0,
        0,
        1,
        1,
    ]
    model.before_train(SimpleNamespace(dataset=labelled))
    info = model.results_info()
    assert model.mode == info["mode"] == "supervised"
    assert info["n_anomalous_train"] == 2 and info["n_anomalous_train_with_mask"] == 2
    # The labelled images stay out of the test split.
    test = Folder(tmp_path, "part", "test", abnormal_train_dir="labelled")
    names = {Path(test.get_data_info(i)["img_path"]).name for i in range(len(test))}
    assert "d0.png" in names and not names & {"t0.png", "t1.png"}


def test_missing_abnormal_train_dir_is_one_clear_error(tmp_path):
    from adtool.errors import DataError

    _png(tmp_path / "part" / "good" / "n0.png")
    _png(tmp_path / "part" / "good" / "n1.png")
    with pytest.raises(DataError, match="abnormal_train_dir .*labelled not found"):
        Folder(tmp_path, "part", "train", abnormal_train_dir="labelled")
