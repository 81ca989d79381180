"""DFKDE: the KDE against scipy's gaussian_kde, the head's pipeline and calibration."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import gaussian_kde
from sklearn.decomposition import PCA

from adtool.errors import ConfigError, DataError
from adtool.models.anomaly.dfkde import KDEHead
from adtool.models.anomaly.dfkde.kde_head import calibrate
from adtool.models.components.kde import fit_gaussian_kde, kde_log_density, scott_factor


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_kde_log_density_equals_scipy_gaussian_kde():
    # Correlated, unequal-scale data: the bandwidth matrix is a full covariance.
    mix = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.5, 0.0], [0.1, -0.3, 2.0]], dtype=torch.float64)
    data = _randn(60, 3) @ mix
    queries = torch.cat([_randn(7, 3, seed=1) @ mix, torch.full((1, 3), 6.0, dtype=torch.float64)])
    fit = fit_gaussian_kde(data)
    ours = kde_log_density(queries, *fit, chunk_size=3)  # several chunks
    ref = gaussian_kde(data.numpy().T).logpdf(queries.numpy().T)
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-9, atol=1e-9)
    # A far query stays finite where the density itself would underflow.
    far = kde_log_density(torch.full((1, 3), 200.0, dtype=torch.float64), *fit)
    assert torch.isfinite(far).all() and far.item() < -1000


def test_kde_log_density_is_the_direct_mean_of_gaussians():
    data = _randn(20, 2)
    query = torch.tensor([[0.3, -0.2]], dtype=torch.float64)
    h = torch.cov(data.T) * scott_factor(20, 2) ** 2
    diff = query - data
    quad = (diff @ torch.linalg.inv(h) * diff).sum(1)
    direct = torch.exp(-quad / 2).mean() / (2 * math.pi * torch.linalg.det(h).sqrt())
    ours = kde_log_density(query, *fit_gaussian_kde(data))
    assert ours.item() == pytest.approx(math.log(direct.item()), rel=1e-10)


def test_fit_gaussian_kde_refuses_too_few_or_flat_samples():
    with pytest.raises(ValueError, match="more samples than dims"):
        fit_gaussian_kde(_randn(3, 3))
    flat = torch.cat([_randn(10, 2), torch.zeros(10, 1, dtype=torch.float64)], 1)
    with pytest.raises(ValueError, match="singular"):
        fit_gaussian_kde(flat)


def test_calibration_is_anomalibs_logistic():
    s = torch.tensor([12.0, 32.0, -8.0], dtype=torch.float64)
    expected = 1 / (1 + torch.exp(0.05 * (s - 12)))
    assert torch.allclose(calibrate(s), expected)
    assert calibrate(torch.tensor([12.0])).item() == 0.5


def test_kde_head_is_pca_then_max_scaling_then_scipy_kde():
    features = (_randn(80, 20) * torch.linspace(3, 0.1, 20, dtype=torch.float64)).float()
    queries = (_randn(5, 20, seed=3) * 2).float()
    head = KDEHead(n_components=4)
    head.fit(features)
    # sklearn's PCA may flip signs; a full-covariance KDE does not care.
    pca = PCA(n_components=4).fit(features.double().numpy())
    z = pca.transform(features.double().numpy())
    scale = np.linalg.norm(z, axis=1).max()
    ref = gaussian_kde((z / scale).T).logpdf((pca.transform(queries.double().numpy()) / scale).T)
    np.testing.assert_allclose(head.log_density(queries).numpy(), ref, rtol=1e-4, atol=1e-4)
    assert head.max_length.item() == pytest.approx(scale, rel=1e-5)
    probs = head(queries)
    assert probs.dtype == torch.float32
    assert torch.allclose(probs, calibrate(torch.from_numpy(ref)).float(), atol=1e-6)


def test_kde_head_norm_scaling_puts_vectors_on_the_unit_sphere():
    head = KDEHead(n_components=3, feature_scaling="norm")
    head.fit(_randn(30, 10).float())
    points = head.kde_points.double() @ torch.linalg.inv(head.kde_whitening.double())
    assert torch.allclose(points.norm(dim=1), torch.ones(30, dtype=torch.float64), atol=1e-5)


def test_kde_head_keeps_a_random_subset_beyond_max_training_points():
    head = KDEHead(n_components=2, max_training_points=25)
    head.fit(_randn(60, 6).float())
    assert head.kde_points.shape == (25, 2)
    again = KDEHead(n_components=2, max_training_points=25)
    again.fit(_randn(60, 6).float())
    assert torch.equal(head.kde_points, again.kde_points)  # seeded subset


def test_kde_head_state_dict_round_trip_and_errors():
    head = KDEHead(n_components=3)
    with pytest.raises(RuntimeError, match="fit the model first"):
        head(torch.zeros(1, 8))
    head.fit(_randn(20, 8).float())
    fresh = KDEHead(n_components=3)
    fresh.load_state_dict(head.state_dict())
    x = _randn(4, 8, seed=5).float()
    assert torch.equal(fresh(x), head(x))
    with pytest.raises(DataError, match="fitted on 8-d features"):
        head(torch.zeros(1, 9))
    with pytest.raises(DataError, match="more training images than its 3 PCA"):
        KDEHead(n_components=3).fit(_randn(3, 8).float())
    with pytest.raises(DataError, match="identical"):
        KDEHead(n_components=3).fit(torch.ones(10, 8))
    with pytest.raises(ConfigError, match="feature_scaling"):
        KDEHead(feature_scaling="max")


def test_dfkde_scores_an_outlier_higher_and_has_no_map():
    from adtool.models.anomaly.dfkde import DFKDE

    model = DFKDE(
        backbone=dict(type="TimmBackbone", arch="resnet18", out_indices=(4,), weights=None),
        head=dict(type="KDEHead", n_components=4),
    ).eval()
    torch.manual_seed(0)
    normal = torch.randn(12, 3, 32, 32) * 0.1
    emb = model.embed(normal)
    assert emb.shape == (12, 512)
    model.fit_embeddings(emb)
    scores, maps = model.anomaly_outputs(torch.cat([normal[:2], normal[:2] + 3.0]))
    assert maps is None and scores.shape == (4,)
    assert scores[2:].min() > scores[:2].max()
