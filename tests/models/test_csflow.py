"""CS-Flow's distinctive math: the cross-scale coupling, its log-determinant, the scores."""

import math

import pytest
import torch

from adtool.errors import ConfigError
from adtool.models.anomaly.csflow import CSFlow, TimmStageBackbone
from adtool.models.anomaly.csflow.cross_scale_flow import (
    CrossConvolutions,
    CrossScaleCoupling,
    ParallelPermute,
    cross_scale_flow,
)
from adtool.models.backbones import TimmBackbone

SHAPES = [(6, 8, 8), (6, 4, 4), (6, 2, 2)]


def _perturbed(module: torch.nn.Module, seed: int = 0, std: float = 0.3) -> torch.nn.Module:
    """Double precision, every parameter moved off the identity start (gamma = 0)."""
    torch.manual_seed(seed)
    module = module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.add_(std * torch.randn_like(p))
    return module


def _inputs(shapes, batch=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, *shape, generator=g, dtype=torch.double) for shape in shapes]


def test_cross_scale_coupling_inverts_to_1e_5():
    coupling = _perturbed(CrossScaleCoupling(SHAPES, clamp=3.0, hidden_channels=8))
    x = _inputs(SHAPES)
    z, log_det = coupling(x)
    assert [t.shape for t in z] == [t.shape for t in x]
    assert min((a - b).abs().max().item() for a, b in zip(z, x, strict=True)) > 1e-2
    x_back, log_det_rev = coupling(z, rev=True)
    for a, b in zip(x_back, x, strict=True):
        assert (a - b).abs().max().item() < 1e-5
    torch.testing.assert_close(log_det_rev, -log_det)
    # The whole graph (permutations and 4 couplings, kernels 3, 3, 3, 5) as well.
    flow = _perturbed(cross_scale_flow(SHAPES, coupling_blocks=4, hidden_channels=8), std=0.1)
    z, log_det = flow(x)
    x_back, log_det_rev = flow(list(z), rev=True)
    for a, b in zip(x_back, x, strict=True):
        assert (a - b).abs().max().item() < 1e-5
    torch.testing.assert_close(log_det_rev, -log_det)


def test_log_det_equals_the_autograd_jacobian_of_the_whole_flow():
    shapes = [(4, 2, 2), (4, 1, 1), (4, 1, 1)]  # D = 16 + 4 + 4
    flow = _perturbed(cross_scale_flow(shapes, coupling_blocks=2, hidden_channels=6), std=0.4)
    x = _inputs(shapes, batch=1)
    sizes = [t.numel() for t in x]

    def f(flat):
        parts = [p.view(1, *s) for p, s in zip(flat.split(sizes), shapes, strict=True)]
        return torch.cat([z.flatten() for z in flow(parts)[0]])

    flat = torch.cat([t.flatten() for t in x])
    jac = torch.autograd.functional.jacobian(f, flat)
    sign, brute = torch.linalg.slogdet(jac)
    _, log_det = flow(x)
    assert sign.item() > 0 and abs(brute.item()) > 0.1  # a real, non-trivial volume change
    assert log_det.item() == pytest.approx(brute.item(), abs=1e-8)


def test_coupling_log_det_is_the_sum_of_the_soft_clamped_log_scales():
    coupling = _perturbed(CrossScaleCoupling(SHAPES, clamp=2.0, hidden_channels=8))
    x = _inputs(SHAPES)
    _, log_det = coupling(x)
    # Recompute by hand: s1 from the second halves, s2 from the transformed first halves.
    first = [t[:, :3] for t in x]
    second = [t[:, 3:] for t in x]
    r1 = coupling.subnet2(*second)
    s1 = [2.0 * 0.636 * torch.atan(r[:, :3] / 2.0) for r in r1]
    y1 = [a * torch.exp(s) + r[:, 3:] for a, s, r in zip(first, s1, r1, strict=True)]
    s2 = [2.0 * 0.636 * torch.atan(r[:, :3] / 2.0) for r in coupling.subnet1(*y1)]
    expected = sum(s.sum((1, 2, 3)) for s in s1 + s2)
    torch.testing.assert_close(log_det, expected)
    assert max(s.abs().max().item() for s in s1 + s2) < 2.0 * 0.636 * math.pi / 2


def test_subnets_start_at_zero_so_the_flow_starts_as_the_identity():
    flow = cross_scale_flow(SHAPES, coupling_blocks=2, hidden_channels=8)
    x = [t.float() for t in _inputs(SHAPES)]
    z, log_det = flow(x)
    for a, b in zip(z, x, strict=True):  # two permutations composed, nothing else
        assert torch.equal(a.sort(1).values, b.sort(1).values)
    assert torch.equal(log_det, torch.zeros(2))
    sub = CrossConvolutions(3, 6, n_scales=3, hidden_channels=8)
    assert all(o.abs().max() == 0 for o in sub(*[t[:, :3].float() for t in x]))


def test_cross_convolutions_mix_neighbouring_scales_only():
    sub = _perturbed(CrossConvolutions(2, 4, n_scales=3, hidden_channels=5))
    x = [t[:, :2] for t in _inputs(SHAPES)]
    base = sub(*x)
    moved = [x[0], x[1], x[2] + 1.0]  # change the coarsest scale only
    out = sub(*moved)
    assert (out[1] - base[1]).abs().max() > 1e-3  # its neighbour sees it
    assert torch.equal(out[0], base[0])  # two scales away: no direct path in one subnet


def test_parallel_permute_shares_one_permutation_and_inverts():
    perm = ParallelPermute(SHAPES, seed=3)
    x = _inputs(SHAPES)
    y, log_det = perm(x)
    for a, b in zip(y, x, strict=True):
        torch.testing.assert_close(a, b[:, perm.perm])
    assert sorted(perm.perm.tolist()) == list(range(6)) and perm.perm.tolist() != list(range(6))
    back, _ = perm(list(y), rev=True)
    for a, b in zip(back, x, strict=True):
        torch.testing.assert_close(a, b)
    assert torch.equal(log_det, torch.zeros(2))
    assert torch.equal(ParallelPermute(SHAPES, seed=3).perm, perm.perm)  # seeded, fixed


def _tiny_csflow(input_size=64, **kw):
    torch.manual_seed(0)
    backbone = dict(type="TimmStageBackbone", arch="tf_efficientnet_lite0", stage=4, weights=None)
    return CSFlow(backbone=backbone, hidden_channels=8, input_size=input_size, **kw)


def test_scores_loss_and_map_follow_the_official_formulas():
    model = _tiny_csflow()
    assert model.feature_shapes == [(112, 4, 4), (112, 2, 2), (112, 1, 1)]
    z = [torch.full((2, 3, 2, 2), 2.0), torch.full((2, 3, 1, 1), 4.0)]
    z[0][1] = 0.0
    # Image score: mean of z^2 / 2 over all 12 + 3 latents of both scales.
    expected = torch.tensor([(12 * 4.0 + 3 * 16.0) / 2 / 15, 3 * 16.0 / 2 / 15])
    torch.testing.assert_close(CSFlow.image_scores(z), expected)
    # Map: mean over channels of z^2 / 2 at the finest scale.
    expected_map = torch.stack([torch.full((2, 2), 2.0), torch.zeros(2, 2)])
    torch.testing.assert_close(CSFlow.latent_map(z), expected_map)
    # Loss: mean over images of (0.5 * ||z||^2 - log|det J|) / D.
    log_det = torch.tensor([1.5, -3.0])
    per_image = torch.tensor([0.5 * (48.0 + 48.0) - 1.5, 0.5 * 48.0 + 3.0])
    assert CSFlow.nll_per_dim(z, log_det).item() == pytest.approx(per_image.mean().item() / 15)
    # End to end: the model's outputs are these functions of its own latents.
    images = torch.randn(2, 3, 64, 64)
    scores, maps = model.anomaly_outputs(images)
    latents, _ = model.latents(images)
    torch.testing.assert_close(scores, CSFlow.image_scores(latents))
    assert maps.shape == (2, 64, 64)
    assert model.loss(images)["loss"].requires_grad


def test_stage_backbone_returns_the_stage_timm_returns_as_a_level():
    ref = TimmBackbone("tf_efficientnet_lite0", out_indices=(3,), weights="imagenet")
    stage = TimmStageBackbone("tf_efficientnet_lite0", stage=4, weights="imagenet")
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(stage(x)[0], ref(x)[0])  # blocks.4 = timm level 3, same weights
    assert (stage.out_channels, stage.reductions) == ([112], [16])
    lite5 = TimmStageBackbone("tf_efficientnet_lite0", stage=5, weights=None)
    assert (lite5.out_channels, lite5.reductions) == ([192], [32])
    assert tuple(lite5(torch.zeros(1, 3, 96, 96))[0].shape[1:]) == lite5.feature_shapes(96)[0]
    b5 = TimmStageBackbone("tf_efficientnet_b5", stage=5, weights=None)  # features.6.8
    assert (b5.out_channels, b5.reductions) == ([304], [32])
    with pytest.raises(ConfigError, match="stage must be in 0..6"):
        TimmStageBackbone("tf_efficientnet_lite0", stage=7, weights=None)


def test_bad_sizes_are_refused_with_the_fix():
    with pytest.raises(ConfigError, match="do not halve; use a multiple of 64"):
        _tiny_csflow(input_size=65)  # scales 65, 32, 16 px: 5x5, 2x2, 1x1 maps
    model = _tiny_csflow()
    with pytest.raises(ConfigError, match="set model.input_size"):
        model.features(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ConfigError, match="kernel_sizes"):
        _tiny_csflow(kernel_sizes=[3, 3])
