"""PaDiM and DFM parts: Gaussian/Mahalanobis and PCA math against numpy/scipy/sklearn."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import mahalanobis as scipy_mahalanobis
from scipy.stats import multivariate_normal
from sklearn.decomposition import PCA

from adtool.errors import ConfigError, DataError
from adtool.models.anomaly.dfm import PCAFeatureHead
from adtool.models.anomaly.padim import ChannelSubsetNeck, GaussianHead
from adtool.models.components import (
    fit_gaussian,
    fit_pca,
    mahalanobis,
    pca_inverse_transform,
    pca_transform,
)
from adtool.models.necks import AvgPoolNeck
from adtool.registry import MODELS


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# --- Gaussian / Mahalanobis -------------------------------------------------------------


def test_fit_gaussian_matches_numpy_cov_plus_reg_and_inverse():
    samples = _randn(30, 5, 4) * torch.tensor([1.0, 2.0, 0.5, 3.0])
    mean, inv_cov = fit_gaussian(samples, reg=0.01)
    assert mean.shape == (5, 4) and inv_cov.shape == (5, 4, 4) and inv_cov.dtype == torch.float32
    x = samples.double().numpy()
    for p in range(5):
        cov = np.cov(x[:, p], rowvar=False) + 0.01 * np.eye(4)
        np.testing.assert_allclose(mean[p].numpy(), x[:, p].mean(0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(inv_cov[p].numpy(), np.linalg.inv(cov), rtol=1e-4, atol=1e-5)


def test_fit_gaussian_chunking_does_not_change_the_result():
    samples = _randn(12, 40, 6)
    whole = fit_gaussian(samples)
    # A budget of 0 MiB forces one position per chunk.
    chunked = fit_gaussian(samples, memory_mb=0)
    # A non-contiguous view (as GaussianHead passes) gives the same numbers.
    view = fit_gaussian(samples.transpose(1, 2).contiguous().transpose(1, 2))
    for other in (chunked, view):
        assert torch.equal(other[0], whole[0]) and torch.equal(other[1], whole[1])


def test_fit_gaussian_regularises_rank_deficient_covariance():
    # 5 samples in 20 dims: the sample covariance is singular; + 0.01 I makes it invertible.
    samples = _randn(5, 20)
    mean, inv_cov = fit_gaussian(samples)
    assert mean.shape == (20,) and torch.isfinite(inv_cov).all()
    # Along a direction orthogonal to the data, the variance is exactly the regulariser.
    span = torch.linalg.qr((samples - samples.mean(0)).T.double()).Q  # (20, 5)
    v = _randn(20, seed=1).double()
    v = (v - span @ (span.T @ v)).float()
    d2 = mahalanobis(mean + v, mean, inv_cov, squared=True)
    assert d2.item() == pytest.approx(v.square().sum().item() / 0.01, rel=1e-3)
    with pytest.raises(ValueError, match="at least 2"):
        fit_gaussian(_randn(1, 3))


def test_mahalanobis_matches_scipy_per_position_and_batch():
    train = _randn(50, 3, 4, seed=1)
    mean, inv_cov = fit_gaussian(train)
    x = _randn(2, 3, 4, seed=2) * 3
    dist = mahalanobis(x, mean, inv_cov)
    assert dist.shape == (2, 3)
    for b in range(2):
        for p in range(3):
            ref = scipy_mahalanobis(x[b, p].double(), mean[p].double(), inv_cov[p].double())
            assert dist[b, p].item() == pytest.approx(ref, rel=1e-5)
    squared = mahalanobis(x, mean, inv_cov, squared=True)
    assert torch.allclose(squared, dist.square(), rtol=1e-5)
    # The mean itself is at distance 0; a single Gaussian takes (D,) / (D, D).
    assert mahalanobis(mean, mean, inv_cov).abs().max() < 1e-6
    single = mahalanobis(x[:, 0], mean[0], inv_cov[0])
    assert torch.allclose(single, dist[:, 0])


# --- PaDiM parts ---------------------------------------------------------------------------


def test_channel_subset_is_seeded_sorted_and_selects_those_channels():
    a = ChannelSubsetNeck(in_channels=[4, 8, 8], num_channels=6, seed=3)
    b = ChannelSubsetNeck(in_channels=20, num_channels=6, seed=3)
    c = ChannelSubsetNeck(in_channels=20, num_channels=6, seed=4)
    assert torch.equal(a.indices, b.indices) and not torch.equal(a.indices, c.indices)
    assert a.indices.tolist() == sorted(set(a.indices.tolist())) and a.indices.max() < 20
    # The draw does not depend on (or disturb) the global RNG.
    torch.manual_seed(123)
    assert torch.equal(ChannelSubsetNeck(20, 6, seed=3).indices, a.indices)
    fine = _randn(2, 4, 8, 8)
    mid = _randn(2, 8, 4, 4, seed=1)
    coarse = _randn(2, 8, 2, 2, seed=2)
    out = a([fine, mid, coarse])
    assert out.shape == (2, 6, 8, 8)
    # Nearest upsampling: each coarse cell covers a block of fine positions.
    full = torch.cat(
        [
            fine,
            mid.repeat_interleave(2, 2).repeat_interleave(2, 3),
            coarse.repeat_interleave(4, 2).repeat_interleave(4, 3),
        ],
        1,
    )
    assert torch.equal(out, full[:, a.indices])


def test_channel_subset_errors_name_the_key():
    with pytest.raises(ConfigError, match="num_channels"):
        ChannelSubsetNeck(in_channels=[64, 128], num_channels=550)
    neck = ChannelSubsetNeck(in_channels=10, num_channels=None)
    assert torch.equal(neck.indices, torch.arange(10))
    with pytest.raises(ConfigError, match="in_channels"):
        neck([_randn(1, 12, 2, 2)])


def test_gaussian_head_scores_mahalanobis_per_position_and_roundtrips():
    train = _randn(40, 3, 2, 2)
    head = GaussianHead()
    head.fit(train)
    assert head.mean.shape == (4, 3) and head.inv_cov.shape == (4, 3, 3)
    test = _randn(2, 3, 2, 2, seed=5)
    test[1, :, 0, 1] += 8.0  # an outlier at position (0, 1) of image 1
    dist = head(test)
    samples = train.flatten(2).double()
    for i, j in [(0, 0), (1, 1)]:
        p = 2 * i + j
        x = samples[:, :, p].numpy()
        inv = np.linalg.inv(np.cov(x, rowvar=False) + 0.01 * np.eye(3))
        ref = scipy_mahalanobis(test[1, :, i, j].double(), x.mean(0), inv)
        assert dist[1, i, j].item() == pytest.approx(ref, rel=1e-4)
    assert dist[1].argmax() == 1 and dist[1, 0, 1] > 3 * dist[0].max()
    fresh = GaussianHead()
    fresh.load_state_dict(head.state_dict())
    assert torch.equal(fresh(test), dist)
    with pytest.raises(DataError, match="training image size"):
        head(_randn(1, 3, 3, 3))
    with pytest.raises(DataError, match="at least 2"):
        GaussianHead().fit(train[:1])


def _preprocessor():
    return dict(type="AnomalyDataPreprocessor", mean=[127.5] * 3, std=[127.5] * 3)


def _images(n, seed=0, size=64):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randint(0, 255, (3, size, size), dtype=torch.uint8, generator=g) for _ in range(n)
    ]


def _fit_and_predict(model, train, test):
    model.fit_step({"inputs": train, "data_samples": None})
    model.fit()
    data = model.data_preprocessor({"inputs": test, "data_samples": None}, False)
    return model(data["inputs"], None, mode="predict")


def _padim(seed=0):
    return MODELS.build(
        dict(
            type="PaDiM",
            data_preprocessor=_preprocessor(),
            backbone=dict(
                type="TimmBackbone", arch="resnet18", out_indices=(1, 2, 3), weights=None
            ),
            neck=dict(type="ChannelSubsetNeck", num_channels=20, seed=seed),
            head=dict(type="GaussianHead"),
        )
    )


def test_padim_map_is_full_size_blurred_and_score_is_its_max():
    torch.manual_seed(0)
    model = _padim()
    assert model.neck.in_channels == 64 + 128 + 256  # taken from the backbone
    train = _images(6)
    # Flat grey images are far from random-noise training images.
    odd = [torch.full((3, 64, 64), 128, dtype=torch.uint8)]
    samples = _fit_and_predict(model, train, train[:2] + odd)
    assert model.head.mean.shape == (16 * 16, 20) and model.head.inv_cov.shape == (256, 20, 20)
    assert samples[0].anomaly_map.shape == (64, 64)
    for s in samples:
        assert s.pred_score == s.anomaly_map.max()
    assert samples[2].pred_score > 2 * samples[0].pred_score


def test_padim_channel_subset_persists_in_the_state_dict():
    torch.manual_seed(0)
    model = _padim(seed=0)
    _fit_and_predict(model, _images(3), _images(1, seed=1))
    state = model.state_dict()
    assert torch.equal(state["neck.indices"], model.neck.indices)
    # A model built with another seed takes the saved subset (and statistics) on load.
    other = _padim(seed=7)
    assert not torch.equal(other.neck.indices, model.neck.indices)
    other.load_state_dict(state)
    assert torch.equal(other.neck.indices, model.neck.indices)
    x = model.data_preprocessor({"inputs": _images(2, seed=2), "data_samples": None}, False)
    assert torch.equal(other(x["inputs"])[0], model(x["inputs"])[0])


# --- PCA / DFM parts -----------------------------------------------------------------------


def _low_rank(n, d, rank, seed=0, noise=0.0):
    g = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(d, rank, generator=g)).Q.T  # (rank, d) orthonormal
    scales = torch.linspace(3.0, 1.0, rank)
    coeffs = torch.randn(n, rank, generator=g) * scales
    return coeffs @ basis + 5.0 + noise * torch.randn(n, d, generator=g), basis


def test_fit_pca_matches_sklearn():
    x, _ = _low_rank(60, 12, 5, noise=0.1)
    fitted = fit_pca(x, 0.97)
    ref = PCA(n_components=0.97, svd_solver="full").fit(x.double().numpy())
    assert fitted.components.shape[0] == ref.n_components_
    np.testing.assert_allclose(fitted.mean.numpy(), ref.mean_, rtol=1e-5)
    np.testing.assert_allclose(
        fitted.explained_variance.numpy(), ref.explained_variance_, rtol=1e-4
    )
    # Same directions up to sign.
    cos = (fitted.components.double().numpy() * ref.components_).sum(1)
    np.testing.assert_allclose(np.abs(cos), 1.0, atol=1e-5)
    assert fit_pca(x, 3).components.shape == (3, 12)
    with pytest.raises(ValueError, match="n_components"):
        fit_pca(x, 13)
    with pytest.raises(ValueError, match="fraction"):
        fit_pca(x, 1.5)


def test_pca_reconstruction_is_exact_in_span_and_large_off_span():
    x, basis = _low_rank(40, 16, 4)
    fitted = fit_pca(x, 0.999)
    assert fitted.components.shape[0] == 4
    in_span = 5.0 + torch.randn(3, 4) @ basis
    orth = torch.linalg.qr(torch.cat([basis.T, torch.randn(16, 1)], 1)).Q[:, -1]
    off_span = in_span + 4.0 * orth
    for pts, expected in ((in_span, 0.0), (off_span, 16.0)):
        z = pca_transform(pts, fitted.mean, fitted.components)
        err = (pts - pca_inverse_transform(z, fitted.mean, fitted.components)).square().sum(1)
        assert torch.allclose(err, torch.full((3,), expected), atol=1e-3)


def test_pca_head_fre_and_nll_values_and_ranking():
    x, basis = _low_rank(50, 2 * 2 * 2, 3, noise=0.01)
    train = x.view(50, 2, 2, 2)
    fre = PCAFeatureHead(pca_level=0.97, score_type="fre")
    nll = PCAFeatureHead(pca_level=0.97, score_type="nll")
    fre.fit(train)
    nll.fit(train)
    k = fre.components.shape[0]
    assert k == 3
    normal = (5.0 + torch.randn(2, 3) @ basis).view(2, 2, 2, 2)
    far_in_span = (5.0 + 30 * torch.ones(1, 3) @ basis).view(1, 2, 2, 2)
    off_span = normal[:1].clone()
    off_span[0, 1, 0, 1] += 3.0  # one channel at grid position (0, 1)
    batch = torch.cat([normal, far_in_span, off_span])
    fre_scores, fre_map = fre(batch)
    nll_scores, nll_map = nll(batch)
    assert fre_map.shape == (4, 2, 2) and torch.equal(fre_map, nll_map)
    # FRE is the squared residual; the map splits it by grid position.
    assert torch.allclose(fre_scores, fre_map.flatten(1).sum(1))
    assert fre_scores[:2].max() < 1e-3 and fre_scores[2] < 0.05 and fre_scores[3] > 1.0
    assert fre_map[3].argmax() == 1
    # NLL is the diagonal Gaussian in PCA coordinates.
    z = pca_transform(batch.flatten(1), nll.mean, nll.components)
    var = nll.variance.double().numpy()
    ref = -multivariate_normal(np.zeros(k), np.diag(var)).logpdf(z.double().numpy())
    np.testing.assert_allclose(nll_scores.double().numpy(), ref, rtol=1e-4)
    # In span but far out: NLL flags it, FRE cannot.
    assert nll_scores[2] > nll_scores[:2].max() + 10
    fresh = PCAFeatureHead(score_type="nll")
    fresh.load_state_dict(nll.state_dict())
    assert torch.equal(fresh(batch)[0], nll_scores)
    with pytest.raises(ConfigError, match="score_type"):
        PCAFeatureHead(score_type="kde")
    with pytest.raises(DataError, match="training size"):
        fre(torch.zeros(1, 2, 3, 3))


def test_avg_pool_neck_averages_blocks_and_takes_one_level():
    feat = torch.arange(2 * 8 * 8, dtype=torch.float32).view(1, 2, 8, 8)
    out = AvgPoolNeck(kernel_size=4)([feat])
    assert out.shape == (1, 2, 2, 2)
    assert out[0, 0, 0, 0] == feat[0, 0, :4, :4].mean()
    assert out[0, 1, 1, 0] == feat[0, 1, 4:, :4].mean()
    with pytest.raises(ConfigError, match="out_indices"):
        AvgPoolNeck()([feat, feat])
    with pytest.raises(ConfigError, match="kernel_size"):
        AvgPoolNeck(kernel_size=16)([feat])


@pytest.mark.parametrize("score_type", ["fre", "nll"])
def test_dfm_predicts_full_size_map_and_ranks_novel_image_higher(score_type):
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type="DFM",
            data_preprocessor=_preprocessor(),
            backbone=dict(type="TimmBackbone", arch="resnet18", out_indices=(3,), weights=None),
            neck=dict(type="AvgPoolNeck", kernel_size=2),
            head=dict(type="PCAFeatureHead", score_type=score_type),
        )
    )
    train = _images(8)
    odd = [torch.full((3, 64, 64), 128, dtype=torch.uint8)]
    samples = _fit_and_predict(model, train, train[:2] + odd)
    assert model.head.mean.shape == (256 * 2 * 2,)
    assert samples[0].anomaly_map.shape == (64, 64)
    assert samples[2].pred_score > samples[0].pred_score
    if score_type == "fre":
        # The training images are in the PCA span (97%): small error; bilinear upsampling
        # keeps the map's mean equal to the grid's.
        assert samples[2].pred_score > 10 * samples[0].pred_score
        assert samples[2].anomaly_map.mean() * 4 == pytest.approx(
            samples[2].pred_score.item(), rel=1e-3
        )
    else:
        assert math.isfinite(samples[0].pred_score.item())
