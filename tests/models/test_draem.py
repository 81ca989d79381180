"""DRAEM: synthetic anomalies, losses, the SSPCAB switch, maps and the results note."""

import numpy as np
import pytest
import torch
from PIL import Image

from adtool.errors import ConfigError
from adtool.models.anomaly.draem.networks import SSPCAB
from adtool.registry import MODELS, TRANSFORMS
from adtool.structures import AnomalyDataSample


def _model(**kwargs):
    torch.manual_seed(0)
    cfg = dict(
        type="DRAEM",
        reconstructive_width=4,
        discriminative_width=4,
        score_kernel=5,
        data_preprocessor=dict(type="AnomalyDataPreprocessor", mean=[0.0] * 3, std=[255.0] * 3),
    )
    return MODELS.build(dict(cfg, **kwargs))


def _white_texture_dir(tmp_path):
    folder = tmp_path / "dtd" / "images" / "white"  # DTD's nested layout
    folder.mkdir(parents=True)
    Image.fromarray(np.full((40, 50, 3), 255, np.uint8)).save(folder / "white_0001.jpg")
    return tmp_path / "dtd"


def _synthesis(results, **kwargs):
    mask = TRANSFORMS.build(dict(type="PerlinAnomalyMask", prob=1.0, max_rotation=90.0))
    blend = TRANSFORMS.build(dict(type="TextureAnomalyBlend", **kwargs))
    return blend(mask(results))


# ---------------------------------------------------------------------------- synthesis


def test_blend_fills_only_the_binary_mask_with_beta_in_range(tmp_path):
    np.random.seed(0)
    texture_dir = _white_texture_dir(tmp_path)
    betas = []
    for _ in range(40):
        img = np.zeros((32, 32, 3), np.uint8)
        out = _synthesis(dict(img=img), texture_dir=str(texture_dir), num_augments=0)
        mask = out["gt_mask"]
        assert set(np.unique(mask)) <= {0, 1}
        assert out["gt_label"] == int(mask.any())
        assert out["img_clean"] is img and not img.any()  # the target stays anomaly-free
        assert not out["img"][mask == 0].any()  # nothing changes outside the mask
        if mask.any():
            inside = out["img"][mask == 1]
            # One beta per anomaly: black image + beta * white texture.
            assert inside.min() == inside.max()
            betas.append(inside.max() / 255.0)
    assert len(betas) > 20
    assert min(betas) >= 0.1 - 0.5 / 255 and max(betas) <= 1.0
    assert max(betas) - min(betas) > 0.3  # drawn, not fixed


def test_fixed_beta_is_the_texture_opacity(tmp_path):
    np.random.seed(1)
    texture_dir = _white_texture_dir(tmp_path)
    img = np.full((32, 32, 3), 100, np.uint8)
    for _ in range(10):
        out = _synthesis(
            dict(img=img), texture_dir=str(texture_dir), num_augments=0, beta_range=(0.5, 0.5)
        )
        if out["gt_mask"].any():
            # (1 - 0.5) * 100 + 0.5 * 255 = 177.5 -> 178
            assert set(np.unique(out["img"][out["gt_mask"] == 1])) == {178}
            return
    pytest.fail("no non-empty mask in 10 draws")


def test_anomaly_free_fraction_follows_prob():
    np.random.seed(0)
    mask = TRANSFORMS.build(dict(type="PerlinAnomalyMask", prob=0.5))
    blend = TRANSFORMS.build(dict(type="TextureAnomalyBlend", texture_dir=None))
    labels = []
    for _ in range(300):
        img = np.full((32, 32, 3), 7, np.uint8)
        out = blend(mask(dict(img=img)))
        labels.append(out["gt_label"])
        if out["gt_label"] == 0:
            assert not out["gt_mask"].any() and (out["img"] == 7).all()
    # prob 0.5 of a mask, and a thresholded noise is sometimes empty: just over half normal.
    assert 0.45 <= 1 - np.mean(labels) <= 0.65


def test_rotation_keeps_the_mask_binary_and_changes_it():
    mask = TRANSFORMS.build(dict(type="PerlinAnomalyMask", max_rotation=90.0))
    plain = TRANSFORMS.build(dict(type="PerlinAnomalyMask"))
    np.random.seed(3)
    rotated = mask(dict(img=np.zeros((48, 48, 3), np.uint8)))["anomaly_mask"]
    np.random.seed(3)
    unrotated = plain(dict(img=np.zeros((48, 48, 3), np.uint8)))["anomaly_mask"]
    assert set(np.unique(rotated)) <= {0.0, 1.0}
    assert not np.array_equal(rotated, unrotated) or not unrotated.any()


def test_texture_source_is_named_with_its_fallback(tmp_path):
    missing = TRANSFORMS.build(dict(type="TextureAnomalyBlend", texture_dir=str(tmp_path / "no")))
    assert missing.source_info.startswith("fallback: procedural colour Perlin noise")
    assert str(tmp_path / "no") in missing.source_info
    np.random.seed(0)
    texture = missing._texture(32, 40)
    assert texture.shape == (3, 32, 40) and texture.dtype == torch.uint8
    assert texture.float().std() > 5  # a texture, not a flat colour
    found = TRANSFORMS.build(
        dict(type="TextureAnomalyBlend", texture_dir=str(_white_texture_dir(tmp_path)))
    )
    assert found.source_info == f"1 texture images from {tmp_path / 'dtd'}"


def test_bad_beta_range_is_a_config_error():
    with pytest.raises(ConfigError, match="beta_range"):
        TRANSFORMS.build(dict(type="TextureAnomalyBlend", beta_range=(0.5, 1.5)))


def test_pack_puts_the_clean_image_in_the_sample():
    pack = TRANSFORMS.build(dict(type="PackAnomalyInputs", image_keys=["img_clean"]))
    clean = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    out = pack(dict(img=np.zeros_like(clean), img_clean=clean, gt_mask=np.ones((4, 5))))
    assert torch.equal(out["data_samples"].img_clean, torch.from_numpy(clean).permute(2, 0, 1))
    with pytest.raises(KeyError, match="img_clean"):
        pack(dict(img=clean))


# ---------------------------------------------------------------------------- losses


def _batch(n=2, size=32):
    torch.manual_seed(1)
    clean = (torch.rand(n, 3, size, size) * 255).to(torch.uint8)
    masks = torch.zeros(n, size, size, dtype=torch.uint8)
    masks[:, 8:20, 4:16] = 1
    samples = []
    for c, m in zip(clean, masks):
        s = AnomalyDataSample()
        s.gt_mask = m
        s.set_field(c, "img_clean")
        samples.append(s)
    return clean.float() / 255.0, masks, samples


def test_loss_is_zero_for_perfect_reconstruction_and_segmentation():
    model = _model()
    clean, masks, samples = _batch()
    logits = torch.stack((1 - masks.float(), masks.float()), 1) * 40.0 - 20.0
    model.segment = lambda inputs: (clean.clone(), logits)
    losses = model.loss(clean, samples)
    assert set(losses) == {"loss_l2", "loss_ssim", "loss_focal"}
    for name, value in losses.items():
        assert value.abs() < 1e-5, name
    # Inverted segmentation and a wrong reconstruction cost.
    model.segment = lambda inputs: (clean.clone() * 0.5, -logits)
    losses = model.loss(clean, samples)
    assert losses["loss_focal"] > 10 and losses["loss_l2"] > 0.01 and losses["loss_ssim"] > 0.1


def test_training_samples_without_targets_are_a_config_error():
    model = _model()
    with pytest.raises(ConfigError, match="TextureAnomalyBlend"):
        model.loss(torch.rand(1, 3, 32, 32), [AnomalyDataSample()])


def test_sspcab_switch_changes_the_encoder_and_the_loss():
    # 64 px: a 4 x 4 grid at the block (at 2 x 2 its corner kernels would see only padding).
    clean, _, samples = _batch(size=64)
    plain, with_block = _model(), _model(sspcab=True, sspcab_weight=0.1)
    assert isinstance(with_block.reconstructive.encoder.last, SSPCAB)
    assert not any(isinstance(m, SSPCAB) for m in plain.modules())
    assert "loss_sspcab" not in plain.loss(clean, samples)
    losses = with_block.loss(clean, samples)
    block_in, block_out = with_block.reconstructive.encoder.sspcab_io
    assert block_in.shape == block_out.shape == (2, 32, 4, 4)
    expected = 0.1 * (block_out - block_in).pow(2).mean()
    assert torch.isclose(losses["loss_sspcab"], expected)
    assert losses["loss_sspcab"] > 0
    losses["loss_sspcab"].backward()
    assert with_block.reconstructive.encoder.last.corners[0].weight.grad.abs().sum() > 0


def test_sspcab_sees_only_the_four_corners_of_its_masked_field():
    torch.manual_seed(0)
    block = SSPCAB(4, kernel_size=1, dilation=1)
    # Make the channel attention a constant 1 so only the masked convolution is left.
    torch.nn.init.zeros_(block.attention[2].weight)
    torch.nn.init.constant_(block.attention[2].bias, 30.0)
    x = torch.randn(1, 4, 9, 9, requires_grad=True)
    out = block(x)
    assert out.shape == x.shape
    out[0, :, 4, 4].sum().backward()
    seen = (x.grad[0].abs().sum(0) > 0).nonzero().tolist()
    # k = 1, d = 1: the pixels 2 rows and 2 columns away; never the centre itself.
    assert sorted(seen) == [[2, 2], [2, 6], [6, 2], [6, 6]]


# ---------------------------------------------------------------------------- inference


def test_map_is_the_softmax_anomaly_channel_at_input_resolution():
    model = _model().eval()
    x = torch.rand(2, 3, 64, 96)
    scores, maps = model.anomaly_outputs(x)
    assert maps.shape == (2, 64, 96) and scores.shape == (2,)
    _, logits = model.segment(x)
    assert torch.allclose(maps, logits.softmax(1)[:, 1])
    assert torch.allclose(scores, model.score_from_map(maps))


def test_score_is_the_max_of_the_mean_filtered_map():
    model = _model(score_kernel=5)
    maps = torch.zeros(2, 32, 32)
    maps[0, 10, 10] = 1.0  # one hot pixel is diluted by the 5 x 5 mean
    maps[1, 10:15, 10:15] = 0.8  # a 5 x 5 blob keeps its level
    scores = model.score_from_map(maps)
    assert torch.allclose(scores, torch.tensor([1.0 / 25, 0.8]))


def test_weight_init_is_the_official_normal_one_by_default():
    official, default = _model(), _model(weight_init="pytorch")
    conv = official.discriminative.enc[2][0].weight  # 8 -> 16 channels, 3 x 3
    assert abs(conv.std().item() - 0.02) < 0.004 and abs(conv.mean().item()) < 0.004
    bn = official.reconstructive.encoder.stages[0][1]
    assert abs(bn.weight.mean().item() - 1.0) < 0.02 and bn.weight.std() > 0
    # torch's kaiming-uniform bound for fan-in 72 is 1 / sqrt(72): std 0.068.
    assert abs(default.discriminative.enc[2][0].weight.std().item() - 0.068) < 0.01
    with pytest.raises(ConfigError, match="weight_init"):
        _model(weight_init="xavier")


def test_input_side_must_be_divisible_by_32():
    with pytest.raises(ConfigError, match="divisible by 32"):
        _model().anomaly_outputs(torch.rand(1, 3, 48, 48))
    with pytest.raises(ConfigError, match="odd"):
        _model(score_kernel=4)


def _tiny_run(tiny_data, work, texture_dir):
    from adtool.apis import load_config, run_category

    options = {
        f"{loader}.dataset.data_root": str(tiny_data)
        for loader in ("train_dataloader", "val_dataloader", "test_dataloader")
    }
    options.update(
        {
            "train_dataloader.dataset.pipeline.3.texture_dir": str(texture_dir),
            "model.reconstructive_width": 4,
            "model.discriminative_width": 4,
            "train_cfg.max_epochs": 1,
            "train_cfg.val_interval": 1,
        }
    )
    return run_category(load_config("draem_sample", options), "disk", work)


def test_results_name_the_fallback_anomaly_source(tiny_data, tmp_path):
    result = _tiny_run(tiny_data, tmp_path / "run", tmp_path / "no_dtd")
    note = result["model_info"]["anomaly_source"]
    assert note.startswith("fallback: procedural colour Perlin noise")
    assert str(tmp_path / "no_dtd") in note
    log = next((tmp_path / "run").rglob("*.log")).read_text()
    assert log.count("DRAEM anomaly source: fallback") == 1
    assert result["pixel"] is not None and 0.0 <= result["image"]["AUROC"] <= 1.0
