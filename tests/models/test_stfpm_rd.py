"""STFPM and Reverse Distillation parts: loss, distance head, bottleneck, decoder, models."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.optim import build_optim_wrapper

from adtool.apis import load_config
from adtool.errors import ConfigError
from adtool.models.anomaly.reverse_distillation import OCBENeck
from adtool.models.components.residual_block import ResidualBlock
from adtool.models.heads import FeatureDistanceHead, ReverseDecoder
from adtool.models.heads.feature_distance_head import feature_distance
from adtool.models.losses import CosineFeatureLoss
from adtool.registry import MODELS
from adtool.structures import AnomalyDataSample


def _cosine_reference(t: np.ndarray, s: np.ndarray, flatten: bool) -> float:
    """mean(1 - cos) of (B, C, H, W) arrays, in float64 numpy."""
    if flatten:
        a, b = t.reshape(len(t), -1), s.reshape(len(s), -1)
    else:
        a = t.transpose(0, 2, 3, 1).reshape(-1, t.shape[1])
        b = s.transpose(0, 2, 3, 1).reshape(-1, s.shape[1])
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float((1 - cos).mean())


# -- CosineFeatureLoss -------------------------------------------------------------------


@pytest.mark.parametrize("flatten", [False, True])
def test_loss_is_zero_for_identical_and_scaled_features(flatten):
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 6, 4, 4, generator=g)]
    loss = CosineFeatureLoss(flatten=flatten)
    assert loss(feats, feats).item() == pytest.approx(0.0, abs=1e-6)
    # Cosine ignores the scale of the student's features.
    assert loss(feats, [3 * f for f in feats]).item() == pytest.approx(0.0, abs=1e-6)


def test_sum_reduction_is_anomalibs_batch_summed_stfpm_loss():
    # anomalib: per level 0.5 / (h w) * sum over batch, channels and positions of the
    # squared difference of L2-normalised features; the mean reduction is that / B.
    g = torch.Generator().manual_seed(0)
    t = [torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 6, 4, 4, generator=g)]
    s = [torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 6, 4, 4, generator=g)]
    reference = sum(
        0.5 / (a.shape[2] * a.shape[3]) * ((F.normalize(a) - F.normalize(b)) ** 2).sum()
        for a, b in zip(t, s)
    )
    summed = CosineFeatureLoss(reduction="sum")(t, s)
    assert summed.item() == pytest.approx(reference.item(), rel=1e-5)
    assert CosineFeatureLoss()(t, s).item() == pytest.approx(reference.item() / 3, rel=1e-5)
    with pytest.raises(ConfigError, match="reduction='max'"):
        CosineFeatureLoss(reduction="max")


def test_loss_matches_hand_computation_for_known_pair():
    # One image, 2 channels, 2 positions: position 0 orthogonal, position 1 identical.
    t = torch.tensor([[1.0, 3.0], [0.0, 4.0]]).view(1, 2, 1, 2)
    s = torch.tensor([[0.0, 3.0], [1.0, 4.0]]).view(1, 2, 1, 2)
    # Per position: (1 + 0) / 2.
    assert CosineFeatureLoss(flatten=False)([t], [s]).item() == pytest.approx(0.5)
    # Flattened: t = (1, 3, 0, 4), s = (0, 3, 1, 4): cos = 25 / 26.
    assert CosineFeatureLoss(flatten=True)([t], [s]).item() == pytest.approx(1 / 26)
    # Two levels with weights and an overall factor.
    loss = CosineFeatureLoss(flatten=False, level_weights=[1.0, 3.0], loss_weight=2.0)
    assert loss([t, t], [s, s]).item() == pytest.approx(2.0 * (0.5 + 3 * 0.5))


@pytest.mark.parametrize("flatten", [False, True])
def test_loss_matches_numpy_reference(flatten):
    g = torch.Generator().manual_seed(1)
    t = [torch.randn(3, 5, 6, 6, generator=g), torch.randn(3, 7, 3, 3, generator=g)]
    s = [torch.randn(3, 5, 6, 6, generator=g), torch.randn(3, 7, 3, 3, generator=g)]
    expected = sum(_cosine_reference(a.numpy(), b.numpy(), flatten) for a, b in zip(t, s))
    got = CosineFeatureLoss(flatten=flatten)(t, s).item()
    assert got == pytest.approx(expected, rel=1e-5)


def test_per_position_loss_is_stfpm_half_squared_distance_of_normalised_features():
    g = torch.Generator().manual_seed(2)
    t, s = torch.randn(2, 8, 5, 5, generator=g), torch.randn(2, 8, 5, 5, generator=g)
    stfpm = 0.5 * ((F.normalize(t, dim=1) - F.normalize(s, dim=1)) ** 2).sum(1).mean()
    assert CosineFeatureLoss()([t], [s]).item() == pytest.approx(stfpm.item(), rel=1e-5)


def test_loss_rejects_wrong_number_of_level_weights():
    with pytest.raises(ConfigError, match="level_weights"):
        CosineFeatureLoss(level_weights=[1.0])(
            [torch.ones(1, 2, 2, 2)] * 2, [torch.ones(1, 2, 2, 2)] * 2
        )


# -- FeatureDistanceHead -----------------------------------------------------------------


def test_l2_normalised_distance_is_twice_cosine_distance():
    g = torch.Generator().manual_seed(3)
    t, s = torch.randn(2, 6, 4, 4, generator=g), torch.randn(2, 6, 4, 4, generator=g)
    l2 = feature_distance(t, s, "l2_normalized")
    cos = feature_distance(t, s, "cosine")
    assert l2.shape == (2, 4, 4)
    assert torch.allclose(l2, 2 * cos, atol=1e-5)


def _pair_with_distance(shape, distance_value, g):
    """Teacher/student features whose cosine distance is ``distance_value`` everywhere."""
    b, _, h, w = shape
    angle = torch.acos(torch.tensor(1 - distance_value))
    t = torch.zeros(shape)
    s = torch.zeros(shape)
    scale = torch.rand(b, 1, h, w, generator=g) + 0.5
    t[:, 0] = scale[:, 0]
    s[:, 0] = torch.cos(angle) * 2
    s[:, 1] = torch.sin(angle) * 2
    return t, s


@pytest.mark.parametrize("fusion", ["product", "sum"])
def test_head_fuses_constant_level_maps_exactly(fusion):
    g = torch.Generator().manual_seed(4)
    t1, s1 = _pair_with_distance((2, 3, 8, 8), 0.2, g)
    t2, s2 = _pair_with_distance((2, 5, 4, 4), 0.5, g)
    head = FeatureDistanceHead(distance="cosine", fusion=fusion)
    amap = head([t1, t2], [s1, s2], (32, 32))
    expected = 0.2 * 0.5 if fusion == "product" else 0.2 + 0.5
    assert amap.shape == (2, 32, 32)
    assert torch.allclose(amap, torch.full_like(amap, expected), atol=1e-5)


@pytest.mark.parametrize("fusion", ["product", "sum"])
def test_head_matches_manual_upsample_and_fusion(fusion):
    g = torch.Generator().manual_seed(5)
    t = [torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 6, 4, 4, generator=g)]
    s = [torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 6, 4, 4, generator=g)]
    amap = FeatureDistanceHead("l2_normalized", fusion)(t, s, (16, 16))
    ups = []
    for a, b in zip(t, s):
        d = ((F.normalize(a, dim=1) - F.normalize(b, dim=1)) ** 2).sum(1, keepdim=True)
        ups.append(F.interpolate(d, size=(16, 16), mode="bilinear", align_corners=False)[:, 0])
    expected = ups[0] * ups[1] if fusion == "product" else ups[0] + ups[1]
    assert torch.allclose(amap, expected, atol=1e-6)


def test_head_rejects_unknown_options():
    with pytest.raises(ValueError, match="fusion"):
        FeatureDistanceHead(fusion="max")
    with pytest.raises(ValueError, match="distance"):
        FeatureDistanceHead(distance="l1")


# -- OCBENeck, ReverseDecoder, residual blocks -------------------------------------------


def test_residual_block_resamples_by_stride():
    x = torch.randn(2, 8, 10, 10)
    assert ResidualBlock(8, 16, resample="down")(x).shape == (2, 16, 5, 5)
    assert ResidualBlock(8, 4, resample="up", block="basic")(x).shape == (2, 4, 20, 20)
    assert ResidualBlock(8, 8)(x).shape == (2, 8, 10, 10)


def test_ocbe_widths_follow_the_encoder():
    # ResNet-shaped widths (WideResNet-50 / 16): the paper's code goes 256 -> 512 -> 1024 and
    # 512 -> 1024, then 3072 -> 2048 at stride 32.
    wrn = OCBENeck(in_channels=[16, 32, 64], reductions=[4, 8, 16])
    assert [[seq[0].out_channels for seq in level] for level in wrn.fuse] == [[32, 64], [64]]
    assert wrn.embed[0].body[0].in_channels == 3 * 64
    assert wrn.out_channels == 128 and wrn.out_reduction == 32
    lite = OCBENeck(in_channels=[24, 40, 112], reductions=[4, 8, 16])
    assert [[seq[0].out_channels for seq in level] for level in lite.fuse] == [[52, 112], [112]]
    assert lite.out_channels == 224
    out = lite([torch.randn(2, 24, 16, 16), torch.randn(2, 40, 8, 8), torch.randn(2, 112, 4, 4)])
    assert out.shape == (2, 224, 2, 2)


def test_ocbe_and_decoder_refuse_strides_that_do_not_double():
    with pytest.raises(ConfigError, match="power of 2"):
        OCBENeck(in_channels=[8, 16], reductions=[4, 12])
    with pytest.raises(ConfigError, match="inside a model"):
        OCBENeck()
    with pytest.raises(ConfigError, match="inside a model"):
        ReverseDecoder()
    with pytest.raises(ConfigError, match="one stage per"):
        ReverseDecoder(64, [8, 16, 32], [4, 8, 16], 32, num_blocks=(1, 1))


def _build(config: str, **options):
    cfg = load_config(config, options)
    return MODELS.build(cfg.model)


@pytest.mark.parametrize(
    ("config", "channels", "signed"),
    [
        ("reverse_distillation_wrn50_mvtec", [256, 512, 1024], False),
        ("reverse_distillation_effnetlite0_mvtec", [24, 40, 112], True),
    ],
)
def test_decoder_restores_every_encoder_level(config, channels, signed):
    model = _build(config, **{"model.backbone.weights": None}).eval()
    for size in (64, 72):  # 72 px gives odd level sizes (18, 9, 5)
        encoded, restored = model.features(torch.randn(1, 3, size, size))
        assert [f.shape[1] for f in encoded] == channels
        assert [f.shape for f in restored] == [f.shape for f in encoded]
        # ResNet levels are post-ReLU; EfficientNet's are not, and the decoder follows.
        assert all(bool((f < 0).any()) == signed for f in encoded)
        assert all(bool((f < 0).any()) == signed for f in restored)


# -- the models --------------------------------------------------------------------------


def _batch(n: int = 2, size: int = 32, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    inputs = [
        torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8) for _ in range(n)
    ]
    return dict(inputs=inputs, data_samples=[AnomalyDataSample() for _ in range(n)])


def _state(module: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _train_one_step(model, optim_cfg: dict) -> dict:
    wrapper = build_optim_wrapper(model, dict(optimizer=optim_cfg))
    model.train()
    return model.train_step(_batch(), wrapper)


def _assert_frozen_and_trained(frozen, trained, frozen_before, trained_before):
    assert all(not m.training for m in frozen.modules()), "frozen part left eval mode"
    for key, value in _state(frozen).items():
        assert torch.equal(value, frozen_before[key]), f"frozen {key} changed"
    assert not any(p.requires_grad for p in frozen.parameters())
    after = _state(trained)
    changed = [k for k, v in trained_before.items() if not torch.equal(v, after[k])]
    params = [n for n, _ in trained.named_parameters()]
    assert set(params) & set(changed), "no trained parameter changed"
    # Batch norm of the trained part follows the batch (train mode).
    assert any(k.endswith("running_mean") for k in changed)


def test_stfpm_train_step_moves_student_only():
    model = _build("stfpm_r18_mvtec", **{"model.teacher.weights": None})
    teacher_before, student_before = _state(model.teacher), _state(model.student)
    log = _train_one_step(model, dict(type="SGD", lr=0.4, momentum=0.9, weight_decay=1e-4))
    assert log["loss"].item() > 0
    assert model.student.training
    _assert_frozen_and_trained(model.teacher, model.student, teacher_before, student_before)


def test_rd_train_step_moves_bottleneck_and_decoder_only():
    model = _build("reverse_distillation_effnetlite0_mvtec", **{"model.backbone.weights": None})
    encoder_before = _state(model.backbone)
    neck_before, decoder_before = _state(model.neck), _state(model.decoder)
    log = _train_one_step(model, dict(type="Adam", lr=0.005, betas=(0.5, 0.999)))
    assert 0 < log["loss"].item() <= 3 * 2  # 1 - cos per level lies in [0, 2]
    _assert_frozen_and_trained(model.backbone, model.neck, encoder_before, neck_before)
    _assert_frozen_and_trained(model.backbone, model.decoder, encoder_before, decoder_before)


def test_stfpm_student_equal_to_teacher_gives_zero_loss_and_map():
    model = _build("stfpm_effnetlite0_mvtec", **{"model.teacher.weights": None}).eval()
    model.student.load_state_dict(model.teacher.state_dict())
    x = torch.randn(2, 3, 64, 64)
    assert model.loss(x, None)["loss"].item() == pytest.approx(0.0, abs=1e-6)
    scores, maps = model.anomaly_outputs(x)
    assert maps.shape == (2, 64, 64)
    assert torch.allclose(maps, torch.zeros_like(maps), atol=1e-6)
    assert torch.allclose(scores, torch.zeros(2), atol=1e-6)


def test_stfpm_map_is_product_of_level_distances_and_score_its_max():
    model = _build("stfpm_r18_mvtec", **{"model.teacher.weights": None}).eval()
    x = torch.randn(2, 3, 64, 64)
    scores, maps = model.anomaly_outputs(x)
    t, s = model.teacher(x), model.student(x)
    expected = torch.ones(2, 64, 64)
    for a, b in zip(t, s):
        d = ((F.normalize(a, dim=1) - F.normalize(b, dim=1)) ** 2).sum(1, keepdim=True)
        expected = expected * F.interpolate(d, size=(64, 64), mode="bilinear")[:, 0]
    assert torch.allclose(maps, expected, rtol=1e-4, atol=1e-7)
    assert torch.equal(scores, maps.flatten(1).max(1).values)


def test_rd_map_is_blurred_sum_of_cosine_distances_and_score_its_max():
    from kornia.filters import gaussian_blur2d

    model = _build("reverse_distillation_effnetlite0_mvtec", **{"model.backbone.weights": None})
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    scores, maps = model.anomaly_outputs(x)
    encoded, restored = model.features(x)
    summed = sum(
        F.interpolate(
            (1 - F.cosine_similarity(a, b, dim=1))[:, None], size=(64, 64), mode="bilinear"
        )
        for a, b in zip(encoded, restored)
    )
    # sigma 4 -> kernel 33 (+-4 sigma), reflect border, as adtool's gaussian_blur.
    expected = gaussian_blur2d(summed, (33, 33), (4.0, 4.0), border_type="reflect")[:, 0]
    assert torch.allclose(maps, expected, atol=1e-5)
    assert torch.equal(scores, maps.flatten(1).max(1).values)


def test_models_predict_samples_with_score_and_full_size_map():
    model = _build("stfpm_r18_mvtec", **{"model.teacher.weights": None}).eval()
    batch = _batch(n=3, size=48)
    with torch.no_grad():
        samples = model.test_step(batch)
    assert len(samples) == 3
    for sample in samples:
        assert sample.anomaly_map.shape == (48, 48)
        assert sample.pred_score == sample.anomaly_map.max()


def test_config_errors_name_the_key():
    cfg = load_config("stfpm_r18_mvtec", {"model.teacher.weights": None})
    bad = copy.deepcopy(cfg.model)
    bad["student"]["arch"] = "resnet34"
    bad["student"]["out_indices"] = (2, 3, 4)
    with pytest.raises(ConfigError, match="model.student"):
        MODELS.build(bad)
    bad = copy.deepcopy(cfg.model)
    bad["teacher"]["frozen"] = False
    with pytest.raises(ConfigError, match="model.teacher.frozen"):
        MODELS.build(bad)
    cfg = load_config("reverse_distillation_effnetlite0_mvtec", {"model.backbone.weights": None})
    bad = copy.deepcopy(cfg.model)
    bad["backbone"]["out_indices"] = (1, 3)
    with pytest.raises(ConfigError, match="one stage per encoder level"):
        MODELS.build(bad)
    # Levels 4x apart are fine: two halving convolutions, one 4x transposed convolution.
    bad["decoder"]["num_blocks"] = (1, 1)
    encoded, restored = MODELS.build(bad).eval().features(torch.randn(1, 3, 64, 64))
    assert [f.shape for f in restored] == [f.shape for f in encoded]
