"""FRE: the tied linear autoencoder's reconstruction error, map layout, input_dim, cache."""

import pytest
import torch
import torch.nn.functional as F

from adtool.errors import ConfigError
from adtool.models.anomaly.fre import FRE, TiedLinearAE
from adtool.structures import AnomalyDataSample


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _orthonormal_rows(k, d, seed=0):
    q, _ = torch.linalg.qr(_randn(d, k, seed=seed))
    return q.t().contiguous()  # (k, d), rows orthonormal


def _fre(arch="tf_efficientnet_lite0", size=128, **kwargs):
    backbone = dict(type="TimmBackbone", arch=arch, out_indices=(3,), frozen=True, weights=None)
    head = dict(type="TiedLinearAE", latent_dim=kwargs.pop("latent_dim", 8))
    return FRE(backbone=backbone, head=head, input_size=size, **kwargs).eval()


def test_projection_weights_reconstruct_the_subspace_exactly_and_error_grows_outside():
    d, k = 12, 3
    ae = TiedLinearAE(d, k)
    basis, mu = _orthonormal_rows(k, d), _randn(d, seed=1)
    with torch.no_grad():
        # x -> mu + W^T W (x - mu): the orthogonal projection onto mu + span(W).
        ae.weight.copy_(basis)
        ae.encoder_bias.copy_(-(basis @ mu))
        ae.decoder_bias.copy_(mu)
    inside = mu + _randn(k, seed=2) @ basis
    normal = _randn(d, seed=3)
    normal = normal - basis.t() @ (basis @ normal)
    normal = normal / normal.norm()  # unit vector orthogonal to the subspace
    errors = [
        (x - ae(x[None])[0]).square().sum().item()
        for x in (inside, inside + normal, inside + 2 * normal, inside + 3 * normal)
    ]
    assert errors[0] == pytest.approx(0.0, abs=1e-9)
    # Squared distance to the subspace: t^2 for t units along the normal.
    assert errors[1:] == pytest.approx([1.0, 4.0, 9.0], rel=1e-5)


def test_trained_autoencoder_learns_its_training_subspace():
    torch.manual_seed(0)
    d, k = 16, 3
    basis, mu = _orthonormal_rows(k, d, seed=4), _randn(d, seed=5)
    train = mu + _randn(256, k, seed=6) * torch.tensor([3.0, 2.0, 1.0]) @ basis
    ae = TiedLinearAE(d, k)
    opt = torch.optim.Adam(ae.parameters(), lr=1e-2)
    for _ in range(1500):
        opt.zero_grad()
        F.mse_loss(ae(train), train).backward()
        opt.step()
    held_out = mu + _randn(20, k, seed=7) @ basis
    inside = (held_out - ae(held_out)).square().sum(1)
    normal = _randn(d, seed=8)
    normal = normal - basis.t() @ (basis @ normal)
    normal = normal / normal.norm()
    outside = [(held_out + t * normal - ae(held_out + t * normal)).square().sum(1) for t in (1, 2)]
    assert inside.max() < 1e-3
    # Off the subspace the error is the squared distance to it: ~1 and ~4.
    assert outside[0].min() > 0.9 and outside[0].max() < 1.1
    assert outside[1].min() > 3.6 and outside[1].max() < 4.4


def test_error_map_is_the_residual_per_grid_position_in_c_h_w_order():
    ae = TiedLinearAE(3 * 2 * 4, 2)
    with torch.no_grad():
        ae.weight.zero_()  # reconstruction = decoder bias = 0: the error is ||x||^2
    feats = torch.zeros(2, 3, 2, 4)
    feats[0, :, 1, 3] = 2.0
    feats[1, 1, 0, 0] = 1.0
    error_map = ae.error_map(feats)
    expected = torch.zeros(2, 2, 4)
    expected[0, 1, 3] = 12.0
    expected[1, 0, 0] = 1.0
    assert torch.equal(error_map, expected)


def test_input_dim_is_the_papers_65536_for_resnet50_layer3_at_256_px():
    model = _fre("resnet50", 256, latent_dim=220)
    assert model.feature_shape == (1024, 8, 8) and model.head.input_dim == 65536
    assert model.head.weight.shape == (220, 65536)
    assert _fre().head.input_dim == 112 * 4 * 4  # EfficientNet-Lite0 stage 3 at 128 px


def test_map_is_aligned_with_the_pooled_grid_and_the_score_is_its_sum():
    model = _fre()
    with torch.no_grad():
        model.head.weight.zero_()
    feats = torch.zeros(1, 112, 4, 4)
    feats[0, :4, 1, 2] = 1.0  # pooled cell (row 1, col 2): pixels [32:64, 64:96] at 128 px
    feats[0, :2, 3, 0] = 1.0  # a weaker cell: the score sums both (6), the map peaks at 4
    model.features = lambda inputs: feats
    scores, maps = model.anomaly_outputs(torch.zeros(1, 3, 128, 128))
    assert maps.shape == (1, 128, 128) and scores.item() == pytest.approx(6.0)
    row, col = divmod(int(maps[0].argmax()), 128)
    assert 32 <= row < 64 and 64 <= col < 96
    assert maps[0, 48, 80] > 0.9 * maps.max() and maps[0, 10, 10] == 0


def test_feature_cache_reuses_features_and_recomputes_a_changed_input():
    model = _fre(size=64, cache_features=True).train()
    calls = []
    model.backbone.register_forward_hook(lambda *_: calls.append(1))
    inputs = _randn(2, 3, 64, 64)
    samples = [AnomalyDataSample(metainfo=dict(img_path=f"{i}.png")) for i in range(2)]
    first = model.loss(inputs, samples)["loss"]
    again = model.loss(inputs, samples)["loss"]
    assert len(calls) == 1 and torch.equal(first, again)
    uncached = F.mse_loss(
        model.head(model.features(inputs).flatten(1)), model.features(inputs).flatten(1)
    )
    assert torch.allclose(first, uncached)
    calls.clear()
    flipped = inputs.flip(-1)  # an augmented image at the same path misses the cache
    model.loss(flipped, samples)
    assert len(calls) == 1
    model.before_train(None)
    assert model._feature_cache == {}


def test_bad_sizes_are_config_errors():
    with pytest.raises(ConfigError, match="kernel_size=2 does not divide"):
        _fre(size=80)  # 80 px -> 5 x 5 stride-16 map
    model = _fre(size=64)
    with pytest.raises(ConfigError, match="model.input_size"):
        model.anomaly_outputs(torch.zeros(1, 3, 128, 128))
