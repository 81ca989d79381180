"""EfficientAD's distinctive math: hard-feature loss, quantile map normalisation, the
held-out validation split, the penalty fallback, the teacher file and its distillation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from adtool.errors import WeightsNotFoundError
from adtool.models.anomaly.efficientad import EfficientAD, PDNBackbone
from adtool.models.anomaly.efficientad.model import (
    hard_feature_loss,
    held_out_paths,
    quantile_normalize,
)
from adtool.models.anomaly.efficientad.networks import AutoEncoder, pdn, pdn_output_size
from adtool.registry import MODELS
from adtool.structures import AnomalyDataSample

PREPROCESSOR = dict(
    type="AnomalyDataPreprocessor", mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]
)


def _tiny_model(**kwargs) -> EfficientAD:
    cfg = dict(
        type="EfficientAD",
        data_preprocessor=PREPROCESSOR,
        teacher=dict(type="PDNBackbone", size="small", width=0.125, weights=None),
        input_size=64,
        width=0.125,
        penalty_dir=None,
    )
    cfg.update(kwargs)
    return MODELS.build(cfg)


def _images(folder, n: int, size: int = 64, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        # Smooth random colour fields: something with structure for the teacher to learn.
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(small).resize((size, size), Image.BICUBIC).save(folder / f"{i:03d}.png")


@pytest.mark.parametrize(("quantile", "kept"), [(0.999, 10), (0.99, 100), (0.9, 1000)])
def test_hard_feature_loss_keeps_exactly_the_top_fraction(quantile, kept):
    values = torch.randperm(10000).float().view(1, 4, 50, 50).requires_grad_(True)
    loss = hard_feature_loss(values, quantile)
    # The mean of exactly the `kept` largest values 9999, 9998, ...
    assert loss.item() == pytest.approx(10000 - (kept + 1) / 2)
    loss.backward()
    trained = values.grad != 0
    assert int(trained.sum()) == kept
    assert values[trained].min().item() == 10000 - kept


def test_quantile_normalisation_maps_the_quantiles_to_0_and_01():
    maps = torch.linspace(0, 1, 100001).view(1, 1, 1, -1)
    assert quantile_normalize(torch.tensor(0.9), torch.tensor(0.9), torch.tensor(0.995)) == 0
    q = torch.quantile(maps.flatten(), torch.tensor([0.9, 0.995]))
    normed = quantile_normalize(maps, q[0], q[1])
    assert torch.quantile(normed.flatten(), torch.tensor([0.9, 0.995])).tolist() == pytest.approx(
        [0.0, 0.1], abs=1e-6
    )


def test_after_train_sets_quantiles_from_the_held_out_images():
    torch.manual_seed(0)
    model = _tiny_model()
    images = [torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8) for _ in range(5)]
    model._validation = list(images)
    model.after_train(train_loader=None)
    inputs = model.data_preprocessor({"inputs": images}, False)["inputs"]
    model.eval()
    with torch.no_grad():
        map_st, map_ae = model.raw_maps(inputs)
        for raw, q in ((map_st, model.quantiles_st), (map_ae, model.quantiles_ae)):
            expected = torch.quantile(raw.flatten(), torch.tensor([0.9, 0.995]))
            assert q.tolist() == pytest.approx(expected.tolist(), rel=1e-5)
            normed = quantile_normalize(raw, *q).flatten()
            got = torch.quantile(normed, torch.tensor([0.9, 0.995]))
            assert got.tolist() == pytest.approx([0.0, 0.1], abs=1e-5)


def test_held_out_split_is_the_official_ten_percent_and_never_trains():
    paths = [f"/d/{i:03d}.png" for i in range(40)]
    held = held_out_paths(paths, 0.1)
    assert len(held) == 4 and held == held_out_paths(list(reversed(paths)), 0.1)
    assert len(held_out_paths(paths[:6], 0.1)) == 1  # 6 - int(0.9 * 6)
    assert held_out_paths(paths, 0.0) == set()

    model = _tiny_model()
    model._held_out = {"/d/held.png"}
    samples = [AnomalyDataSample(metainfo={"img_path": p}) for p in ("/d/held.png", "/d/a.png")]
    batch = {"inputs": [torch.zeros(3, 64, 64, dtype=torch.uint8)] * 2, "data_samples": samples}
    keep, held_part = model._split_batch(batch)
    assert [s.img_path for s in keep["data_samples"]] == ["/d/a.png"]
    assert [s.img_path for s in held_part["data_samples"]] == ["/d/held.png"]
    # A batch of held-out images only: no step (the optimiser is never called).
    out = model.train_step({"inputs": batch["inputs"][:1], "data_samples": samples[:1]}, None)
    assert out["loss"].item() == 0


def test_pdn_shapes_match_the_paper():
    x = torch.zeros(1, 3, 256, 256)
    assert pdn_output_size(256) == 56
    for size in ("small", "medium"):
        assert tuple(pdn(size, 384)(x).shape) == (1, 384, 56, 56)
    assert tuple(AutoEncoder(256, 384).eval()(x).shape) == (1, 384, 56, 56)
    # The paper's Table 6: PDN-small has ~2.7 M parameters (conv 128-256-256-384).
    n_small = sum(p.numel() for p in pdn("small", 384).parameters())
    assert n_small == (3 * 128 * 16 + 128) + (128 * 256 * 16 + 256) + (256 * 256 * 9 + 256) + (
        256 * 384 * 16 + 384
    )


def test_loss_terms_and_penalty_fallback(tmp_path):
    torch.manual_seed(0)
    missing = _tiny_model(penalty_dir=str(tmp_path / "nowhere"))
    assert missing.results_info()["penalty"].startswith("off (fallback)")
    assert str(tmp_path / "nowhere") in missing.results_info()["penalty"]
    _images(tmp_path / "ood", 3)
    model = _tiny_model(penalty_dir=str(tmp_path / "ood"))
    assert model.results_info()["penalty"] == f"on: 3 images from {tmp_path / 'ood'}"
    inputs = torch.randn(1, 3, 64, 64)
    losses = model.loss(inputs, None)
    assert set(losses) == {"loss_st", "loss_penalty", "loss_ae", "loss_stae"}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    assert "loss_penalty" not in _tiny_model().loss(inputs, None)


def test_missing_teacher_names_the_file_and_the_tool(tmp_path):
    with pytest.raises(WeightsNotFoundError) as err:
        PDNBackbone(size="medium", weights="effnetlite0", backbone_dir=tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert str(tmp_path / "pdn_medium_effnetlite0.pth") in message
    assert "tools/distill_teacher.py IMAGE_DIR --size medium" in message


@pytest.fixture(scope="module")
def natural_dir(tmp_path_factory):
    from adtool.datasets.hf import make_natural_image_folder

    return make_natural_image_folder(tmp_path_factory.mktemp("natural"), max_side=256)


def test_natural_image_folder_holds_the_offline_photos(natural_dir):
    files = sorted(natural_dir.glob("*.png"))
    assert len(files) == 18
    assert {"astronaut.png", "china.png", "flower.png", "motorcycle.png"} <= {f.name for f in files}
    for path in files:
        with Image.open(path) as img:
            assert max(img.size) == 256 and img.mode in ("L", "RGB"), path.name
            # Real photos, not blank or binary: many grey levels.
            assert len(np.unique(np.asarray(img.convert("L")))) > 32, path.name


def test_descriptor_convs_are_the_patchcore_descriptor():
    from adtool.models.anomaly.efficientad.distill import (
        descriptor_by_convs,
        descriptor_convs,
        patch_descriptor,
    )

    torch.manual_seed(0)
    features = [torch.randn(2, 40, 8, 8), torch.randn(2, 112, 4, 4)]
    for channels in (128, 384):
        direct = patch_descriptor(features, channels)
        assert direct.shape == (2, channels, 8, 8)
        fast = descriptor_by_convs(features, descriptor_convs([40, 112], channels))
        torch.testing.assert_close(fast, direct, atol=1e-5, rtol=1e-5)
    # Ones everywhere: every pooled value averages ones inside the image and the zero padding
    # outside, so an interior position gives 1; at a corner 4 of each channel's 9 patch
    # elements are inside, so the first level's outputs (the first half for 128 = 2 x 64)
    # lie below 1 and average ~4/9 (each pools a few consecutive patch elements).
    ones = [torch.ones(1, 40, 8, 8), torch.ones(1, 112, 4, 4)]
    out = patch_descriptor(ones, 128)
    assert out[0, :, 3, 3].tolist() == pytest.approx([1.0] * 128)
    corner = out[0, :64, 0, 0]
    assert corner.max() < 1 and corner.mean().item() == pytest.approx(4 / 9, abs=0.02)


def test_natural_image_sampler_views(natural_dir):
    from adtool.models.anomaly.efficientad.distill import NaturalImageSampler
    from adtool.models.anomaly.efficientad.model import list_images

    paths = list_images(natural_dir)
    first = NaturalImageSampler(paths, 32, crop_scale=0.3, seed=1).batch(20)
    again = NaturalImageSampler(paths, 32, crop_scale=0.3, seed=1).batch(20)
    assert first.shape == (20, 3, 32, 32) and 0 <= first.min() and first.max() <= 1
    torch.testing.assert_close(first, again)  # deterministic for a seed
    whole = NaturalImageSampler(paths, 32, crop_scale=1.0, seed=1).batch(18)
    assert not torch.equal(first[:18], whole)
    with pytest.raises(ValueError, match="crop_scale"):
        NaturalImageSampler(paths, 32, crop_scale=0)


def test_distillation_lowers_its_loss_and_writes_a_loadable_teacher(tmp_path, natural_dir):
    from adtool.models.anomaly.efficientad.distill import distill_teacher

    result = distill_teacher(
        natural_dir,
        width=0.125,
        image_size=64,
        steps=40,
        batch_size=8,
        lr=2e-3,
        crop_scale=0.3,
        source_scale=1,
        source_levels=(1, 2),
        stat_batches=4,
        backbone_dir=tmp_path / "bb",
        log_every=0,
    )
    losses = result["losses"]
    assert len(losses) == 40 and all(math.isfinite(v) for v in losses)
    # Targets are normalised per channel, so predicting 0 costs ~1: the start is near 1
    # and the last steps are clearly lower.
    assert 0.7 < np.mean(losses[:3]) < 1.5, losses
    assert np.mean(losses[-10:]) < 0.85 * np.mean(losses[:3]), losses
    path = tmp_path / "bb" / "pdn_small-w0.125_effnetlite0.pth"
    assert result["path"] == path and path.is_file()
    assert not list((tmp_path / "bb").glob("*.tmp"))
    meta = torch.load(path, weights_only=True)["meta"]
    assert meta["padding_in_distillation"] and meta["crop_scale"] == 0.3
    assert meta["source_scale"] == 1 and meta["source_levels"] == [1, 2]
    assert meta["first_losses"] == pytest.approx(losses[:20])
    teacher = PDNBackbone(width=0.125, weights="effnetlite0", backbone_dir=tmp_path / "bb")
    assert teacher.weights_path == str(path)
    # Distilled padded, used unpadded: the same parameters, the paper's output side.
    side = pdn_output_size(64)
    assert tuple(teacher(torch.zeros(1, 3, 64, 64)).shape) == (1, 384, side, side)
    with pytest.raises(WeightsNotFoundError, match="does not hold a PDN-small"):
        PDNBackbone(width=0.25, weights=str(path))
