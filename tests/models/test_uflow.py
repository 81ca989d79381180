"""U-Flow's distinctive math: the a-contrario NFA map, the U-shaped flow, the fifth threshold."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from adtool.errors import ConfigError
from adtool.evaluation.metrics import AnomalyMetric
from adtool.evaluation.report import build_report
from adtool.evaluation.thresholds import nfa_threshold
from adtool.models.anomaly.uflow import MultiScaleViTBackbone, UFlow, UShapedFlowHead
from adtool.models.anomaly.uflow.model import likelihood_anomaly_map
from adtool.models.anomaly.uflow.nfa import (
    binomial_log10_tail,
    candidate_threshold,
    log10_nfa_map,
    window_candidates,
)
from adtool.structures import AnomalyDataSample

FOUR = {"f1_percentile", "f1_uniform", "youden_j", "percentile_95"}


def _seed(seed=0):
    # FrEIA draws the blocks' permutations from numpy's global generator.
    np.random.seed(seed)
    torch.manual_seed(seed)


# ------------------------------------------------------------------ the NFA


def test_candidate_threshold_is_the_chi2_quantile():
    for q in (0.5, 0.9, 0.1):
        assert candidate_threshold(q) == pytest.approx(stats.chi2.ppf(q, 1), rel=1e-9)
    with pytest.raises(ValueError, match="probability_thr"):
        candidate_threshold(1.0)


@pytest.mark.parametrize("n, p", [(49, 0.5), (9, 0.5), (25, 0.2)])
def test_binomial_tail_matches_scipy_at_least_k(n, p):
    k = torch.tensor([0.0, 0.3, 1.0, 4.5, n / 2, n - 1.0, n - 0.2, float(n)])
    ours = binomial_log10_tail(k, n, p).double()
    # P(K >= k) for a real k is P(K >= ceil(k)) = sf(ceil(k) - 1).
    brute = np.log10(stats.binom.sf(np.ceil(k.numpy()) - 1, n, p))
    np.testing.assert_allclose(ours.numpy(), brute, rtol=1e-9, atol=1e-12)
    # A direct sum of the pmf, for one value.
    direct = sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(5, n + 1))
    assert ours[3].item() == pytest.approx(math.log10(direct), rel=1e-9)
    assert ours[0].item() == pytest.approx(0.0, abs=1e-12)  # P(K >= 0) = 1
    assert ours[-1].item() == pytest.approx(n * math.log10(p))  # P(K >= n) = p^n, finite


def _brute_counts(z: np.ndarray, tau: float, half: int) -> np.ndarray:
    """Per position: candidates in the (2 half + 1)^2 window over every channel, / C."""
    b, c, h, w = z.shape
    hits = np.pad((z**2 >= tau), ((0, 0), (0, 0), (half, half), (half, half)), mode="reflect")
    out = np.zeros((b, 1, h, w))
    for y in range(h):
        for x in range(w):
            out[:, 0, y, x] = hits[:, :, y : y + 2 * half + 1, x : x + 2 * half + 1].sum((1, 2, 3))
    return out / c


def test_window_candidates_count_with_reflect_padding():
    _seed(0)
    z = torch.randn(2, 5, 6, 7)
    tau = candidate_threshold(0.5)
    for half in (1, 3):
        ours = window_candidates(z, tau, half).numpy()
        np.testing.assert_allclose(ours, _brute_counts(z.numpy(), tau, half), atol=1e-6)


def test_log_nfa_is_number_of_tests_times_the_binomial_tail():
    """One scale at its own size: log10 NFA = log10(h w) + log10 P(K >= k), per pixel."""
    _seed(1)
    z = torch.randn(1, 4, 8, 8)
    z[:, :, 2:6, 2:6] *= 3.0  # a region of large latents
    ours = log10_nfa_map([z], (8, 8), window_size=7, probability_thr=0.5)[0].double().numpy()
    k = _brute_counts(z.numpy(), stats.chi2.ppf(0.5, 1), 3)[0, 0]
    brute = math.log10(64) + np.log10(stats.binom.sf(np.ceil(k - 1e-9) - 1, 49, 0.5))
    np.testing.assert_allclose(ours, brute, rtol=1e-5, atol=1e-5)


def test_log_nfa_adds_scales_and_counts_every_scales_tests():
    """Two scales: the coarse one's window is 3x3 (7 / 2, at least 3), tests = 16x16 + 8x8."""
    _seed(2)
    fine, coarse = torch.randn(1, 3, 16, 16), torch.randn(1, 6, 8, 8)
    ours = log10_nfa_map([fine, coarse], (16, 16))[0].double().numpy()
    tau = stats.chi2.ppf(0.5, 1)
    log_p = []
    for z, half in ((fine, 3), (coarse, 1)):
        k = _brute_counts(z.numpy(), tau, half)
        tail = np.log10(stats.binom.sf(np.ceil(k - 1e-9) - 1, (2 * half + 1) ** 2, 0.5))
        up = torch.nn.functional.interpolate(
            torch.from_numpy(tail).float(), size=(16, 16), mode="bicubic", align_corners=True
        )
        log_p.append(up[0, 0].double().numpy())
    np.testing.assert_allclose(ours, math.log10(256 + 64) + sum(log_p), atol=1e-4)


def test_nfa_detects_a_planted_anomaly_and_nothing_under_the_null():
    _seed(3)
    null = [torch.randn(4, 16, 32, 32), torch.randn(4, 16, 16, 16)]
    assert log10_nfa_map(null, (64, 64)).min() > 0  # NFA >= 1 everywhere: no false alarm
    planted = [z.clone() for z in null]
    planted[0][0, :, 8:20, 8:20] = 3.0  # every latent of a 12x12 block is a candidate
    log_nfa = log10_nfa_map(planted, (64, 64))
    assert log_nfa[0, 24:32, 24:32].max() < 0  # inside the block: detected
    assert log_nfa[0, 50:, 50:].min() > 0 and log_nfa[1:].min() > 0


# ------------------------------------------------------------------ the U-shaped flow


def _head(shapes=((8, 8, 8), (16, 4, 4)), steps=2):
    _seed(4)
    return UShapedFlowHead([list(s) for s in shapes], flow_steps=steps).double()


def test_u_shaped_flow_is_invertible_and_keeps_every_dimension():
    head = _head(((8, 16, 16), (16, 8, 8), (24, 4, 4)))
    head.eval()
    x = [torch.randn(2, *s, dtype=torch.double) for s in head.feature_shapes]
    z, log_det = head(x)
    # Coarsest 24 ch: 12 go up (3 ch at 8x8), 12 leave; 16 + 3 = 19: 8 up (2 ch), 11 leave;
    # finest: 8 + 2 = 10 channels, all leave.
    assert head.latent_shapes() == [(10, 16, 16), (11, 8, 8), (12, 4, 4)]
    assert [tuple(t.shape[1:]) for t in z] == head.latent_shapes() and log_det.shape == (2,)
    assert sum(t[0].numel() for t in z) == sum(f[0].numel() for f in x)
    back = head.reverse(z)
    for a, b in zip(back, x):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def test_u_shaped_flow_log_det_equals_autograd_jacobian():
    head = _head()
    with torch.no_grad():  # away from the near-identity initialisation
        for p in head.parameters():
            if p.requires_grad:  # the fixed permutations (w_perm) stay permutations
                p.add_(0.1 * torch.randn_like(p))
    shapes = head.feature_shapes
    sizes = [int(np.prod(s)) for s in shapes]

    def flat_flow(v):
        parts = torch.split(v, sizes)
        feats = [p.reshape(1, *s) for p, s in zip(parts, shapes)]
        return torch.cat([t.flatten() for t in head(feats)[0]])

    v = torch.randn(sum(sizes), dtype=torch.double)
    jac = torch.autograd.functional.jacobian(flat_flow, v)
    _, brute = torch.linalg.slogdet(jac)
    feats = [p.reshape(1, *s) for p, s in zip(torch.split(v, sizes), shapes)]
    _, log_det = head(feats)
    assert abs(brute.item()) > 0.1
    assert log_det.item() == pytest.approx(brute.item(), abs=1e-6)


def test_u_shaped_flow_refuses_levels_that_do_not_halve():
    with pytest.raises(ConfigError, match="twice the size"):
        UShapedFlowHead([(8, 8, 8), (16, 3, 3)])


def _tiny_uflow(size=64):
    _seed(5)
    return UFlow(
        backbone=dict(type="TimmBackbone", arch="resnet18", out_indices=(1, 2, 3), weights=None),
        neck=dict(type="LayerNormNeck"),
        head=dict(type="UShapedFlowHead", flow_steps=2),
        input_size=size,
    )


def test_loss_is_the_negative_log_likelihood_of_all_scales():
    model = _tiny_uflow()
    x = torch.randn(2, 3, 64, 64)
    loss = model.loss(x)["loss"]
    z, log_det = model.head(model.features(x))
    direct = (sum(0.5 * t.pow(2).flatten(1).sum(1) for t in z) - log_det).mean()
    assert loss.item() == pytest.approx(direct.item(), rel=1e-5)
    loss.backward()
    assert model.head.flow.module_list[0].global_scale.grad is not None
    assert all(p.grad is None for p in model.backbone.parameters())


def test_anomaly_map_is_one_minus_mean_likelihood():
    z = [torch.zeros(1, 3, 4, 4), torch.full((1, 5, 2, 2), 2.0)]
    amap = likelihood_anomaly_map(z, (4, 4))
    assert amap.shape == (1, 4, 4)
    # exp(0) = 1 and exp(-0.5 * 4) everywhere: 1 - (1 + e^-2) / 2.
    torch.testing.assert_close(amap, torch.full((1, 4, 4), 1 - (1 + math.exp(-2)) / 2))


def test_predict_sets_nfa_score_and_mask_from_the_log_nfa():
    model = _tiny_uflow().eval()
    x = torch.randn(2, 3, 64, 64)
    samples = model.predict(x, [AnomalyDataSample() for _ in range(2)])
    log_nfa = model.log_nfa(model.latents(x), (64, 64))
    for sample, ln in zip(samples, log_nfa):
        assert sample.nfa_score.item() == pytest.approx(-ln.min().item(), abs=1e-5)
        assert torch.equal(sample.nfa_mask.bool(), ln < 0)
        assert sample.anomaly_map.shape == (64, 64) and sample.pred_score.ndim == 0
    assert model.results_info()["nfa"]["epsilon"] == 1.0
    with pytest.raises(ConfigError, match="built for 64x64"):
        model.predict(torch.randn(1, 3, 32, 32))


def test_multiscale_vit_backbone_reports_what_it_returns():
    _seed(6)
    backbone = MultiScaleViTBackbone(
        archs=("cait_xxs24_224", "cait_xxs24_224"), block_indices=(2, 1), img_size=64, weights=None
    )
    assert backbone.out_channels == [192, 192] and backbone.reductions == [16, 32]
    maps = backbone(torch.randn(1, 3, 64, 64))
    expected = [(192, 4, 4), (192, 2, 2)]
    assert [tuple(m.shape[1:]) for m in maps] == backbone.feature_shapes(64) == expected


# ------------------------------------------------------------------ the fifth threshold


def test_nfa_threshold_counts_image_and_pixel_decisions():
    labels = np.array([0, 0, 1, 1, 1])
    nfa_scores = np.array([-1.0, 0.5, 2.0, -0.1, 3.0])  # > 0: detected
    entry = nfa_threshold(nfa_scores, labels)
    assert (entry["TP"], entry["FN"], entry["TN"], entry["FP"]) == (2, 1, 1, 1)
    assert entry["precision"] == pytest.approx(2 / 3) and entry["recall"] == pytest.approx(2 / 3)
    assert entry["f1"] == pytest.approx(2 / 3) and entry["pixel"] is None
    assert entry["nfa_score_AUROC"] == pytest.approx(5 / 6)  # 5 of the 6 pairs in order
    assert "value" not in entry  # the rule acts on the NFA map, not on the image score
    detected = np.zeros((5, 2, 2))
    truth = np.zeros((5, 2, 2))
    detected[2, 0] = 1  # 2 pixels detected, 1 of them true
    truth[2, 0, 0] = truth[4, 1, 1] = 1
    pixel = nfa_threshold(nfa_scores, labels, detected, truth)["pixel"]
    assert pixel == {"precision": 0.5, "recall": 0.5, "F1": 0.5, "IoU": 1 / 3}


def test_fifth_threshold_only_for_models_that_give_nfa_scores():
    scores, labels = np.array([0.1, 0.2, 0.9, 0.8]), np.array([0, 0, 1, 1])
    plain = build_report(scores, labels, ["good", "good", "cut", "cut"])
    assert set(plain["thresholds"]) == FOUR
    with_nfa = build_report(
        scores, labels, ["good", "good", "cut", "cut"], nfa_scores=np.array([-1, -1, 1, -1.0])
    )
    assert set(with_nfa["thresholds"]) == FOUR | {"nfa"}
    assert with_nfa["confusion"]["threshold"] == "f1_percentile"  # the four are unchanged
    for name in FOUR:
        assert plain["thresholds"][name] == with_nfa["thresholds"][name]

    # Through the metric: U-Flow's samples carry nfa_score / nfa_mask, others do not.
    model = _tiny_uflow().eval()
    x = torch.randn(4, 3, 64, 64)
    samples = model.predict(x, [AnomalyDataSample() for _ in range(4)])
    for i, s in enumerate(samples):
        s.gt_label = i % 2
        s.gt_mask = torch.zeros(64, 64, dtype=torch.uint8) + (i % 2)
    metric = AnomalyMetric()
    metric.process({}, [s.to_dict() for s in samples])
    metric.compute_metrics(metric.results)
    assert set(metric.last_report["thresholds"]) == FOUR | {"nfa"}
    assert metric.last_report["thresholds"]["nfa"]["pixel"] is not None
    other = AnomalyMetric()
    stripped = []
    for s in samples:
        d = s.to_dict()
        d.pop("nfa_score"), d.pop("nfa_mask")
        stripped.append(d)
    other.process({}, stripped)
    other.compute_metrics(other.results)
    assert set(other.last_report["thresholds"]) == FOUR
