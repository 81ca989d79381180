"""UniNet: contrastive loss, feature selection, weighted decision, the two teachers."""

import numpy as np
import pytest
import torch
from mmengine.optim import build_optim_wrapper

from adtool.apis import load_config
from adtool.errors import ConfigError
from adtool.models.anomaly.uninet import AttentionBottleneckNeck, UniNetLoss
from adtool.models.anomaly.uninet.attention_bottleneck import AttentionBlock
from adtool.models.anomaly.uninet.decision import decision_weights, fuse_maps, weighted_score
from adtool.models.anomaly.uninet.feature_selection import DomainFeatureSelection
from adtool.models.fast_inference import reference_inference
from adtool.registry import MODELS
from adtool.structures import AnomalyDataSample

# -- UniNetLoss --------------------------------------------------------------------------


def _loss_reference(s: np.ndarray, t: np.ndarray, temp: float, lam: float, margin: float):
    """The paper's three terms for one (B, C, H, W) pair, in float64 numpy, by loops."""
    b, c = s.shape[:2]
    total_cos, total_con, total_margin, count = 0.0, 0.0, 0.0, 0
    for img in range(b):
        a = s[img].reshape(c, -1).T  # (N, C)
        z = t[img].reshape(c, -1).T
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        z = z / np.linalg.norm(z, axis=1, keepdims=True)
        for i in range(len(a)):
            sims = np.array([a[i] @ z[j] for j in range(len(z))])
            p_ii = np.exp(sims[i] / temp) / np.exp(sims / temp).sum()
            total_cos += 1 - sims[i]
            total_con += -np.log(p_ii)
            total_margin += max(margin - p_ii, 0.0)
            count += 1
    return lam * total_cos / count + (1 - lam) * total_con / count + total_margin / count


def test_loss_defaults_are_the_papers():
    loss = UniNetLoss()
    assert (loss.temperature, loss.lambda_weight, loss.margin) == (0.1, 0.7, 1.0)


@pytest.mark.parametrize("temperature", [0.1, 2.0])
def test_loss_matches_direct_computation(temperature):
    g = torch.Generator().manual_seed(0)
    pairs = [
        (torch.randn(2, 5, 3, 4, generator=g, dtype=torch.float64),) * 1
        + (torch.randn(2, 5, 3, 4, generator=g, dtype=torch.float64),),
        (torch.randn(2, 3, 2, 2, generator=g, dtype=torch.float64),) * 1
        + (torch.randn(2, 3, 2, 2, generator=g, dtype=torch.float64),),
    ]
    students, teachers = [p[0] for p in pairs], [p[1] for p in pairs]
    got = UniNetLoss(temperature=temperature)(students, teachers).item()
    want = sum(_loss_reference(s.numpy(), t.numpy(), temperature, 0.7, 1.0) for s, t in pairs)
    assert got == pytest.approx(want, rel=1e-9)


def test_contrastive_term_of_a_known_pair_at_temperature_0_1():
    # Teacher positions are orthonormal (one-hot channels) and the student equals the
    # teacher: cos_ii = 1, cos_ij = 0, so p_ii = e^10 / (e^10 + N - 1).
    n = 4
    t = torch.eye(n, dtype=torch.float64).reshape(1, n, 2, 2)
    terms = UniNetLoss(temperature=0.1).pair_terms(t.clone(), t)
    p = np.exp(10) / (np.exp(10) + n - 1)
    assert terms["cosine"].item() == pytest.approx(0.0, abs=1e-12)
    assert terms["contrastive"].item() == pytest.approx(-np.log(p))
    assert terms["margin"].item() == pytest.approx(1 - p)
    # A colder temperature sharpens the softmax: the same pair costs less.
    warm = UniNetLoss(temperature=2.0).pair_terms(t.clone(), t)
    assert warm["contrastive"].item() == pytest.approx(-np.log(np.exp(0.5) / (np.exp(0.5) + 3)))
    assert warm["contrastive"] > terms["contrastive"]


def test_loss_rejects_bad_settings():
    with pytest.raises(ConfigError, match="temperature"):
        UniNetLoss(temperature=0)
    with pytest.raises(ConfigError, match="lambda_weight"):
        UniNetLoss(lambda_weight=1.5)


# -- DomainFeatureSelection --------------------------------------------------------------


def test_feature_selection_matches_direct_computation():
    g = torch.Generator().manual_seed(1)
    sel = DomainFeatureSelection([3, 2])
    with torch.no_grad():
        sel.thetas[0].fill_(-2.0)  # theta = sigmoid(-2) + 0.5 = 0.619
        sel.thetas[1].fill_(3.0)  # sigmoid(3) + 0.5 > 1: clamped to 1
    teachers = [torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 2, 2, 2, generator=g)]
    students = [torch.randn_like(t) for t in teachers]
    # Four pairs for two levels: pairs 2 and 3 reuse the floors of levels 0 and 1.
    with torch.no_grad():
        got = sel(students + students, teachers + teachers)
    thetas = [1 / (1 + np.exp(2.0)) + 0.5, 1.0]
    for i, (s, t) in enumerate(zip(students + students, teachers + teachers)):
        tn, sn = t.double().numpy(), s.double().numpy()
        want = np.empty_like(sn)
        for b in range(tn.shape[0]):
            for c in range(tn.shape[1]):
                e = np.exp(tn[b, c])
                want[b, c] = sn[b, c] * (e / e.sum()) * (thetas[i % 2] + tn[b, c].mean())
        np.testing.assert_allclose(got[i].numpy(), want, rtol=1e-5, atol=1e-7)


def test_feature_selection_floor_starts_at_one_and_learns_only_below_it():
    # p = 0 gives sigmoid(0) + 0.5 = 1, the clamp's edge: as in the official code, no
    # gradient reaches p there; below 1 it does.
    sel = DomainFeatureSelection([4])
    assert torch.equal(sel.theta(0), torch.ones(1, 4, 1, 1))
    t = torch.rand(1, 4, 3, 3)
    sel([torch.ones_like(t)], [t])[0].sum().backward()
    assert sel.thetas[0].grad.abs().sum() == 0
    with torch.no_grad():
        sel.thetas[0].fill_(-1.0)
    sel.thetas[0].grad = None
    sel([torch.ones_like(t)], [t])[0].sum().backward()
    assert (sel.thetas[0].grad > 0).all()
    with pytest.raises(ValueError, match="multiple of 2"):
        DomainFeatureSelection([4, 4])([t] * 3, [t] * 3)


# -- weighted decision mechanism ---------------------------------------------------------


def test_decision_weight_keeps_maxima_above_mean_probability():
    # Maxima 0.9, 0.1, 0.8 (image 0): softmax > 1/3 for 0.9 and 0.8 only.
    maps = [torch.full((2, 2, 2), v) for v in (0.9, 0.1, 0.8)]
    maps[1][1] = 0.5  # image 1: maxima 0.9, 0.5, 0.8 -> softmax > 1/3 for 0.9, 0.8
    maps[2][1] = 0.2  # now 0.9, 0.5, 0.2 -> only 0.9 is above the mean probability
    w = decision_weights(maps, alpha=0.01, beta=3e-5)
    assert w[0].item() == pytest.approx(0.01 * (0.9 + 0.8) / 2)
    assert w[1].item() == pytest.approx(0.01 * 0.9)
    # beta is the floor; equal maxima count every level.
    assert decision_weights(maps, alpha=1e-6, beta=3e-5)[0].item() == pytest.approx(3e-5)
    flat = [torch.full((1, 2, 2), 0.4)] * 3
    assert decision_weights(flat, 0.5, 1e-4).item() == pytest.approx(0.2)


def test_weighted_score_matches_direct_top_k():
    g = torch.Generator().manual_seed(2)
    maps = torch.rand(3, 8, 8, generator=g, dtype=torch.float64) * 2
    weights = torch.tensor([0.05, 1e-5, 0.5], dtype=torch.float64)
    got = weighted_score(maps, weights)
    for b in range(3):
        m = maps[b].flatten().numpy()
        e = np.exp(m - m.max())
        gap = np.sort(e.max() - e)[::-1]
        k = max(1, int(64 * weights[b].item()))
        assert got[b].item() == pytest.approx(gap[:k].mean())
    # A higher peak above the same background scores higher.
    base = torch.zeros(1, 8, 8)
    low, high = base.clone(), base.clone()
    low[0, 3, 3], high[0, 3, 3] = 0.5, 2.0
    w = torch.tensor([0.1])
    assert weighted_score(high, w) > weighted_score(low, w) > weighted_score(base, w)


def test_fused_map_is_the_sum_of_resized_level_maps():
    maps = [torch.full((2, 4, 4), 0.25), torch.full((2, 2, 2), 0.5)]
    fused = fuse_maps(maps, (16, 16))
    assert fused.shape == (2, 16, 16)
    torch.testing.assert_close(fused, torch.full((2, 16, 16), 0.75))


# -- bottleneck --------------------------------------------------------------------------


def test_attention_block_has_both_kernels_and_keeps_the_shape_contract():
    block = AttentionBlock(6, 16, width=8, stride=2, large_kernel=7)
    kernels = sorted(
        m.kernel_size[0] for m in block.branches.modules() if hasattr(m, "kernel_size")
    )
    assert kernels == [3, 3, 7, 7]
    assert block(torch.randn(2, 6, 9, 9)).shape == (2, 16, 5, 5)
    with pytest.raises(ConfigError, match="large_kernel"):
        AttentionBlock(6, 16, width=8, large_kernel=4)


def test_bottleneck_fuses_levels_to_twice_the_last_stride():
    neck = AttentionBottleneckNeck([8, 16, 32], [4, 8, 16])
    feats = [torch.randn(2, c, 32 // (2**i), 32 // (2**i)) for i, c in enumerate([8, 16, 32])]
    out = neck(feats)
    assert (neck.out_channels, neck.out_reduction) == (64, 32)
    assert out.shape == (2, 64, 4, 4)
    with pytest.raises(ConfigError, match="in_channels and reductions"):
        AttentionBottleneckNeck()


# -- the model ---------------------------------------------------------------------------


def _model(**overrides):
    cfg = load_config("uninet_effnetlite0_sample", {"model.backbone.weights": None})
    return MODELS.build(dict(cfg.model, **overrides))


def _batch(n: int = 2, size: int = 32, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    inputs = [
        torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8) for _ in range(n)
    ]
    return dict(inputs=inputs, data_samples=[AnomalyDataSample() for _ in range(n)])


def _state(module: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _wrapper(model, config: str = "uninet_effnetlite0_sample"):
    cfg = load_config(config, {"model.backbone.weights": None})
    return build_optim_wrapper(model, cfg.optim_wrapper)


def test_the_two_learning_rates_are_applied():
    torch.manual_seed(0)
    model = _model()
    wrapper = _wrapper(model)
    lr_of = {}
    for group in wrapper.optimizer.param_groups:
        for p in group["params"]:
            lr_of[id(p)] = group["lr"]
    for name, p in model.named_parameters():
        if not p.requires_grad:
            assert name.startswith("source_teacher.")
            assert id(p) not in lr_of or lr_of[id(p)] == pytest.approx(5e-3)
            continue
        want = 1e-6 if name.startswith("target_teacher.") else 5e-3
        assert lr_of[id(p)] == pytest.approx(want), name
    assert isinstance(wrapper.optimizer, torch.optim.AdamW)
    assert wrapper.optimizer.defaults["weight_decay"] == 1e-5


def test_one_step_trains_the_target_teacher_and_leaves_the_source_frozen():
    torch.manual_seed(0)
    model = _model()
    # Same weights at the start: the target teacher is a copy of the source.
    for (k, a), b in zip(
        model.source_teacher.state_dict().items(), model.target_teacher.state_dict().values()
    ):
        assert torch.equal(a, b), k
    # The loss reaches the target teacher, never the source teacher.
    model.train()
    inputs = model.data_preprocessor(_batch(), True)["inputs"]
    model.loss(inputs, None)["loss"].backward()
    assert all(p.grad is None for p in model.source_teacher.parameters())
    grads = [p.grad for p in model.target_teacher.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    model.zero_grad(set_to_none=True)

    wrapper = _wrapper(model)
    source, target = _state(model.source_teacher), _state(model.target_teacher)
    student = _state(model.decoder)
    log = model.train_step(_batch(), wrapper)
    assert torch.isfinite(log["loss"])
    assert not any(p.requires_grad for p in model.source_teacher.parameters())
    assert all(not m.training for m in model.source_teacher.modules())
    for k, v in _state(model.source_teacher).items():
        assert torch.equal(v, source[k]), f"source teacher {k} changed"
    after = _state(model.target_teacher)
    params = {n for n, _ in model.target_teacher.named_parameters()}
    changed = {k for k, v in target.items() if not torch.equal(v, after[k])}
    assert changed & params, "no target-teacher weight moved"
    assert any(k.endswith("running_mean") for k in changed)  # train-mode batch norm
    # At lr 1e-6 the teacher moves ~1e-6 per weight; the student at 5e-3 much further.
    moved_t = max((after[k] - target[k]).abs().max().item() for k in changed & params)
    dec = _state(model.decoder)
    moved_s = max((dec[k] - student[k]).abs().max().item() for k in student if "weight" in k)
    assert 0 < moved_t < 1e-5 < moved_s


def test_teachers_and_students_are_paired_across_the_two_teachers():
    torch.manual_seed(0)
    model = _model().eval()
    x = torch.randn(2, 3, 64, 64)
    # The reference path: the frozen source teacher's folded copy (fast_inference.py)
    # rounds differently from the trained target teacher's unfolded network.
    with reference_inference():
        teachers, students = model.features(x)
    assert len(teachers) == len(students) == 6
    for t, s in zip(teachers, students):
        assert t.shape == s.shape
    # Untrained, the target equals the source: both halves see the same input.
    for i in range(3):
        torch.testing.assert_close(teachers[i], teachers[i + 3])
        torch.testing.assert_close(students[i], students[i + 3])
    scores, maps = model.anomaly_outputs(x)
    assert scores.shape == (2,) and maps.shape == (2, 64, 64)
    assert torch.isfinite(scores).all() and (maps >= 0).all()
    max_scores, _ = _model(score="max").eval().anomaly_outputs(x)
    assert max_scores.shape == (2,)


def test_bad_model_settings_are_one_line_errors():
    with pytest.raises(ConfigError, match="frozen=False"):
        _model(backbone=dict(type="TimmBackbone", arch="resnet18", weights=None, frozen=False))
    with pytest.raises(ConfigError, match="score must be one of"):
        _model(score="mean")


def test_paper_config_defaults():
    cfg = load_config("uninet_wrn50_mvtec")
    assert cfg.model.loss.temperature == 0.1
    assert cfg.optim_wrapper.optimizer.lr == 5e-3
    lr_mult = cfg.optim_wrapper.paramwise_cfg.custom_keys["target_teacher"]["lr_mult"]
    assert 5e-3 * lr_mult == pytest.approx(1e-6)
    assert cfg.param_scheduler[0].milestones == [int(0.8 * cfg.train_cfg.max_epochs)]
    assert cfg.param_scheduler[0].gamma == 0.2
    assert (cfg.train_cfg.max_epochs, cfg.train_dataloader.batch_size, cfg.image_size) == (
        100,
        8,
        256,
    )
    assert (cfg.model.alpha, cfg.model.beta) == (0.01, 3e-5)
    sample = load_config("uninet_effnetlite0_sample")
    assert sample.param_scheduler[0].milestones == [int(0.8 * sample.train_cfg.max_epochs)]
