"""CFlow's distinctive math: the positional encoding, the conditional log-likelihood, the map."""

import math

import numpy as np
import pytest
import torch

from adtool.errors import ConfigError
from adtool.models.anomaly.cflow.model import CFlow, cflow_decoder
from adtool.models.components.flows import gaussian_log_likelihood, positional_encoding_2d


def _seed(seed=0):
    # AllInOneBlock draws its soft permutation from numpy's global generator.
    np.random.seed(seed)
    torch.manual_seed(seed)


def test_positional_encoding_matches_sin_cos_at_the_paper_frequencies():
    dim, h, w = 16, 3, 5
    enc = positional_encoding_2d(dim, h, w)
    assert enc.shape == (dim, h, w)
    half = dim // 2
    for i in range(half // 2):
        f = 1.0 / 10000 ** (2 * i / half)  # 1, 0.1, 0.01, 0.001 for half = 8
        for y in range(h):
            for x in range(w):
                # Columns in the first half, rows in the second; sin / cos interleaved.
                assert enc[2 * i, y, x].item() == pytest.approx(math.sin(x * f), abs=1e-6)
                assert enc[2 * i + 1, y, x].item() == pytest.approx(math.cos(x * f), abs=1e-6)
                assert enc[half + 2 * i, y, x].item() == pytest.approx(math.sin(y * f), abs=1e-6)
                assert enc[half + 2 * i + 1, y, x].item() == pytest.approx(
                    math.cos(y * f), abs=1e-6
                )
    # Distinct positions get distinct codes (the condition tells the decoder where it is).
    flat = enc.flatten(1).T
    assert torch.cdist(flat, flat).add(torch.eye(h * w) * 10).min() > 0.1
    with pytest.raises(ValueError, match="multiple of 4"):
        positional_encoding_2d(10, 2, 2)


def test_conditional_log_likelihood_equals_gaussian_plus_autograd_log_det():
    _seed(1)
    channels, cond_dim = 6, 8
    flow = cflow_decoder(channels, coupling_blocks=3, condition_dim=cond_dim, clamp=1.9).double()
    with torch.no_grad():  # away from the near-identity initialisation
        for name, p in flow.named_parameters():
            if "w_perm" not in name:  # the fixed orthogonal permutation stays orthogonal
                p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(1, channels, dtype=torch.double)
    cond = torch.randn(1, cond_dim, dtype=torch.double)
    z, log_det = flow(x, c=[cond])
    jac = torch.autograd.functional.jacobian(lambda v: flow(v[None], c=[cond])[0][0], x[0])
    _, brute_log_det = torch.linalg.slogdet(jac)
    assert abs(brute_log_det.item()) > 0.1
    direct = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum() + brute_log_det
    # 1e-6: the soft permutation is orthogonal to float32 precision only (FrEIA builds it so).
    assert gaussian_log_likelihood(z, log_det).item() == pytest.approx(direct.item(), abs=1e-6)
    # Without the constant: the same up to 0.5 * D * log(2 pi).
    no_const = gaussian_log_likelihood(z, log_det, constant=False).item()
    assert no_const - direct.item() == pytest.approx(0.5 * channels * math.log(2 * math.pi))
    # The condition matters: another position gives another latent and likelihood.
    z2, log_det2 = flow(x, c=[cond + 1.0])
    assert (z2 - z).abs().max() > 1e-3


def _tiny_cflow(**kw):
    _seed(0)
    backbone = dict(type="TimmBackbone", arch="resnet18", out_indices=(2, 3), weights=None)
    return CFlow(backbone=backbone, coupling_blocks=2, condition_dim=8, **kw)


def test_vectorised_log_probs_equal_the_per_fibre_loop():
    model = _tiny_cflow().eval()
    images = torch.randn(2, 3, 64, 64)
    log_probs = model.level_log_probs(images)
    feats = model.backbone(images)
    assert [lp.shape for lp in log_probs] == [(2, 8, 8), (2, 4, 4)]
    enc = positional_encoding_2d(8, 4, 4)
    for b, y, x in [(0, 0, 0), (1, 3, 2), (0, 2, 3)]:
        fibre = feats[1][b, :, y, x][None]
        one = model.fibre_log_prob(1, fibre, enc[:, y, x][None])
        torch.testing.assert_close(one[0], log_probs[1][b, y, x], atol=1e-4, rtol=1e-4)


def test_map_is_minus_the_summed_likelihoods_shifted_by_the_training_max():
    model = _tiny_cflow()
    model.log_prob_max.copy_(torch.tensor([-1.0, -2.0]))
    log_probs = [torch.full((1, 2, 2), -1.0), torch.full((1, 1, 1), -2.0 - math.log(4))]
    amap = model.anomaly_map(log_probs, (4, 4))
    # exp(0) + exp(-log 4) everywhere.
    torch.testing.assert_close(amap, torch.full((1, 4, 4), -1.25))
    # Unknown maxima (NaN, before after_train) fall back to the batch's own.
    model.log_prob_max.fill_(float("nan"))
    torch.testing.assert_close(model.anomaly_map(log_probs, (4, 4)), torch.full((1, 4, 4), -2.0))


def test_loss_is_the_papers_log_sigmoid_of_the_per_dim_log_likelihood():
    model = _tiny_cflow()
    images = torch.randn(2, 3, 64, 64)
    loss = model.loss(images)["loss"]
    with torch.no_grad():
        expected = sum(
            (-torch.nn.functional.logsigmoid(lp)).mean() for lp in model.level_log_probs(images)
        )
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    limited = _tiny_cflow(max_fibers=5)
    assert torch.isfinite(limited.loss(images)["loss"])
    with pytest.raises(ConfigError, match="condition_dim"):
        CFlow(backbone=dict(type="TimmBackbone", arch="resnet18", weights=None), condition_dim=6)
