"""Convolutional autoencoder: reconstruction-error maps and image scores."""

import pytest
import torch

from adtool.errors import ConfigError
from adtool.registry import MODELS


def _model(**kwargs):
    torch.manual_seed(0)
    cfg = dict(type="ConvAutoencoder", input_size=32, base_channels=8, latent_dim=16)
    return MODELS.build(dict(cfg, **kwargs))


@pytest.mark.parametrize("map_type", ["l2", "ssim"])
def test_map_is_zero_for_a_perfect_reconstruction(map_type):
    model = _model(map_type=map_type, blur_sigma=1.0)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    maps = model.to_input_map(model.error_map(x, x.clone()), (32, 32), model.blur_sigma)
    assert maps.shape == (2, 32, 32)
    assert maps.abs().max() < 1e-6
    # ... and grows where the reconstruction is wrong.
    recon = x.clone()
    recon[:, :, 4:20, 4:20] += 1.0
    err = model.error_map(x, recon)
    assert err[:, 10:14, 10:14].min() > 0.1
    assert err[:, 28:, 28:].max() < 1e-6


def test_l2_map_is_channel_mean_of_squared_error():
    model = _model()
    x = torch.zeros(1, 3, 32, 32)
    recon = x.clone()
    recon[0, 0, 5, 7] = 0.6  # one channel off by 0.6: map (0.36 + 0 + 0) / 3
    err = model.error_map(x, recon)
    assert torch.isclose(err[0, 5, 7], torch.tensor(0.12))
    assert err.sum() == err[0, 5, 7]


def test_image_score_max_or_topk_mean():
    maps = torch.zeros(2, 10, 10)
    maps[0, 0, :5] = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0])
    maps[1, 3, 3] = 2.0
    assert torch.equal(_model(score="max").score_from_map(maps), torch.tensor([5.0, 2.0]))
    top3 = _model(score="topk_mean", topk_fraction=0.03).score_from_map(maps)
    assert torch.allclose(top3, torch.tensor([4.0, 2.0 / 3]))


def test_loss_adds_weighted_ssim_and_outputs_match_input_size():
    model = _model(ssim_weight=0.5)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    losses = model.loss(x, None)
    recon = model.reconstruct(x)
    assert set(losses) == {"loss_l2", "loss_ssim"}
    assert torch.allclose(losses["loss_l2"], ((recon - x) ** 2).mean(), rtol=1e-5)
    assert torch.allclose(losses["loss_ssim"], 0.5 * model.ssim_loss(recon, x), rtol=1e-5)
    assert set(_model().loss(x, None)) == {"loss_l2"}
    model.eval()
    scores, maps = model.anomaly_outputs(x)
    assert scores.shape == (2,) and maps.shape == (2, 32, 32)


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="map_type"):
        _model(map_type="l1")
    with pytest.raises(ConfigError, match="power of two"):
        _model(input_size=100)
    with pytest.raises(ConfigError, match="input_size"):
        _model().reconstruct(torch.zeros(1, 3, 64, 64))
