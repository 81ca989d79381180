"""FastFlow's parts: the flows, their log-determinant, the loss, the map, the backbones."""

import math

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from mmengine.optim import build_optim_wrapper

from adtool.errors import ConfigError, WeightsNotFoundError
from adtool.models.anomaly import FastFlow
from adtool.models.anomaly.fastflow import Flow2DHead, FlowNLLLoss, LayerNormNeck
from adtool.models.backbones import ViTTokenBackbone
from adtool.structures import AnomalyDataSample


def _seed(seed=0):
    # AllInOneBlock draws its channel permutation from numpy's global generator.
    np.random.seed(seed)
    torch.manual_seed(seed)


def _trained_like(head: Flow2DHead) -> Flow2DHead:
    """Perturb every parameter so the blocks are far from their initial near-identity."""
    with torch.no_grad():
        for name, p in head.named_parameters():
            if "w_perm" not in name:
                p.add_(0.3 * torch.randn_like(p))
    return head


def test_flow_is_invertible_and_not_the_identity():
    _seed()
    head = _trained_like(Flow2DHead([(4, 6, 6), (6, 3, 3)], flow_steps=4)).double()
    feats = [torch.randn(2, 4, 6, 6, dtype=torch.double), torch.randn(2, 6, 3, 3).double()]
    latents, log_dets = head(feats)
    assert [z.shape for z in latents] == [f.shape for f in feats]
    assert [d.shape for d in log_dets] == [(2,), (2,)]
    assert (latents[0] - feats[0]).abs().max() > 0.1
    for back, x in zip(head.reverse(latents), feats):
        torch.testing.assert_close(back, x, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("conv3x3_only", [False, True])
def test_log_det_equals_autograd_jacobian(conv3x3_only):
    _seed(1)
    shape = (4, 3, 3)  # 36 dimensions: the full Jacobian is cheap
    head = _trained_like(Flow2DHead([shape], flow_steps=3, conv3x3_only=conv3x3_only)).double()
    x = torch.randn(1, *shape, dtype=torch.double)

    def flat_flow(v):
        return head([v.view(1, *shape)])[0][0].flatten()

    jac = torch.autograd.functional.jacobian(flat_flow, x.flatten())
    # The hard channel permutations may flip the sign; the flow reports log|det J|.
    _, brute = torch.linalg.slogdet(jac)
    _, log_dets = head([x])
    assert abs(brute.item()) > 0.1  # a volume-changing map, so the check has teeth
    assert log_dets[0].item() == pytest.approx(brute.item(), abs=1e-8)


def test_subnets_alternate_3x3_and_1x1_with_hidden_ratio():
    head = Flow2DHead([(8, 4, 4)], flow_steps=4, hidden_ratio=0.5)
    blocks = list(head.flows[0].module_list)
    kernels = [b.subnet[0].kernel_size[0] for b in blocks]
    assert kernels == [3, 1, 3, 1]
    # The coupling conditions on half the channels (4): hidden = int(4 * 0.5).
    assert [b.subnet[0].out_channels for b in blocks] == [2] * 4
    assert all(b.clamp == 2.0 for b in blocks)
    only3 = Flow2DHead([(8, 4, 4)], flow_steps=4, conv3x3_only=True)
    assert [b.subnet[2].kernel_size[0] for b in only3.flows[0].module_list] == [3] * 4


def test_nll_loss_is_gaussian_negative_log_likelihood_up_to_a_constant():
    g = torch.Generator().manual_seed(0)
    latents = [torch.randn(3, 2, 4, 4, generator=g), torch.randn(3, 5, 2, 2, generator=g)]
    log_dets = [torch.randn(3, generator=g), torch.randn(3, generator=g)]
    normal = torch.distributions.Normal(0.0, 1.0)
    expected = []
    for z, log_det in zip(latents, log_dets):
        d = z[0].numel()
        nll = -(normal.log_prob(z).flatten(1).sum(1) + log_det)
        expected.append((nll - 0.5 * d * math.log(2 * math.pi)).mean())
    loss = FlowNLLLoss()(latents, log_dets)
    assert loss.item() == pytest.approx(sum(expected).item(), rel=1e-5)
    mean = FlowNLLLoss(level_reduction="mean")(latents, log_dets)
    assert mean.item() == pytest.approx(sum(expected).item() / 2, rel=1e-5)
    zero = FlowNLLLoss()([torch.zeros(2, 3, 2, 2)], [torch.zeros(2)])
    assert zero.item() == 0.0
    with pytest.raises(ConfigError, match="level_reduction"):
        FlowNLLLoss(level_reduction="max")


def test_anomaly_map_is_minus_mean_upsampled_likelihood():
    z1 = torch.zeros(1, 2, 4, 4)
    z1[0, :, 1, 2] = 2.0  # mean_c z^2 = 4 -> likelihood exp(-2)
    z2 = torch.full((1, 3, 2, 2), 1.0)  # likelihood exp(-0.5) everywhere
    amap = Flow2DHead.anomaly_map([z1, z2], (4, 4))
    expected = -(torch.ones(4, 4) + math.exp(-0.5)) / 2
    expected[1, 2] = -(math.exp(-2) + math.exp(-0.5)) / 2
    torch.testing.assert_close(amap[0], expected)
    up = Flow2DHead.anomaly_map([z1], (8, 8))
    ref = -F.interpolate(torch.exp(-0.5 * z1.pow(2).mean(1, keepdim=True)), (8, 8), mode="bilinear")
    torch.testing.assert_close(up, ref[:, 0])


def test_layer_norm_neck_normalises_each_sample_over_chw():
    neck = LayerNormNeck([(3, 4, 4), (2, 2, 2)])
    feats = [5 + 3 * torch.randn(2, 3, 4, 4), torch.randn(2, 2, 2, 2) - 7]
    for out in neck(feats):
        flat = out.flatten(1)
        torch.testing.assert_close(flat.mean(1), torch.zeros(2), atol=1e-5, rtol=0)
        torch.testing.assert_close(flat.var(1, unbiased=False), torch.ones(2), atol=1e-3, rtol=0)
    assert neck.norms[0].weight.shape == (3, 4, 4)


def _model(**kw):
    _seed()
    cfg = dict(
        backbone=dict(
            type="TimmBackbone", arch="resnet18", out_indices=(1, 2), weights=None, frozen=True
        ),
        neck=dict(type="LayerNormNeck"),
        head=dict(type="Flow2DHead", flow_steps=4),
        input_size=32,
        data_preprocessor=dict(type="AnomalyDataPreprocessor", mean=[127.5] * 3, std=[127.5] * 3),
    )
    cfg.update(kw)
    return FastFlow(**cfg)


def test_train_steps_lower_the_nll_and_leave_the_backbone_frozen():
    model = _model()
    assert model.feature_shapes == [(64, 8, 8), (128, 4, 4)]
    wrapper = build_optim_wrapper(model, dict(optimizer=dict(type="Adam", lr=1e-3)))
    backbone_before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    neck_before = model.neck.norms[0].weight.clone()
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (4, 3, 32, 32), generator=g, dtype=torch.uint8)
    batch = dict(inputs=list(images), data_samples=[AnomalyDataSample() for _ in range(4)])
    model.train()
    losses = [model.train_step(batch, wrapper)["loss"].item() for _ in range(8)]
    assert losses[-1] < losses[0] - 0.1 * abs(losses[0])
    assert all(b < a for a, b in zip(losses, losses[1:]))
    # Frozen: same weights and batch-norm statistics, eval mode, no gradient.
    assert model.training and not model.backbone.training and not model.backbone.model.training
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, backbone_before[key]), key
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert not torch.equal(model.neck.norms[0].weight, neck_before)  # the LayerNorm trains
    # After fitting this batch, a corrupted copy scores higher, and where it is corrupted.
    model.eval()
    x = model.data_preprocessor(batch, False)["inputs"]
    bad = x.clone()
    bad[:, :, 8:16, 8:16] = 4.0
    normal_scores, _ = model.anomaly_outputs(x)
    bad_scores, bad_maps = model.anomaly_outputs(bad)
    assert (bad_scores > normal_scores).all()
    assert (bad_maps[:, 8:16, 8:16].mean((1, 2)) > bad_maps[:, 24:, 24:].mean((1, 2))).all()


def test_predict_scores_are_map_maxima_at_input_size():
    model = _model().eval()
    x = torch.randn(2, 3, 32, 32)
    scores, maps = model.anomaly_outputs(x)
    assert maps.shape == (2, 32, 32)
    torch.testing.assert_close(scores, maps.flatten(1).amax(1))
    assert (maps < 0).all() and (maps >= -1).all()


def test_model_refuses_a_wrong_image_size_and_a_user_feature_shapes():
    model = _model()
    with pytest.raises(ConfigError, match="model.input_size"):
        model.anomaly_outputs(torch.randn(1, 3, 64, 64))
    with pytest.raises(ConfigError, match="feature_shapes"):
        _model(head=dict(type="Flow2DHead", feature_shapes=[(1, 1, 1)]))


@pytest.mark.parametrize(
    "arch,prefix", [("deit_tiny_distilled_patch16_224", 2), ("cait_xxs24_224", 1)]
)
def test_vit_tokens_on_a_grid_match_timm_forward_features(arch, prefix):
    # Tiny relatives of deit_base_distilled_patch16_384 / cait_m48_448 at 64 px, so the
    # test runs in a second; the token handling is the same code.
    torch.manual_seed(0)
    ref = timm.create_model(arch, pretrained=False, img_size=64).eval()
    backbone = ViTTokenBackbone(arch, block_index=2, img_size=64, weights=None)
    missing, _ = backbone.model.load_state_dict(ref.state_dict(), strict=False)
    assert not missing
    assert len(backbone.model.blocks) == 3  # later blocks pruned
    x = torch.randn(2, 3, 64, 64)
    (out,) = backbone(x)
    assert out.shape == (2, 192, 4, 4)
    assert backbone.feature_shapes((64, 64)) == [(192, 4, 4)]
    ref.blocks = ref.blocks[:3]
    with torch.no_grad():
        tokens = ref.forward_features(x)  # prefix tokens first, then the final norm
    assert tokens.shape[1] == 16 + prefix == 16 + ref.num_prefix_tokens
    grid = tokens[:, prefix:].reshape(2, 4, 4, 192).permute(0, 3, 1, 2)
    torch.testing.assert_close(out, grid)
    # Token (row 1, col 2) of the grid is patch 1 * 4 + 2 of the sequence.
    torch.testing.assert_close(out[:, :, 1, 2], tokens[:, prefix + 6])
    backbone.train()
    assert not backbone.model.training
    assert not any(p.requires_grad for p in backbone.parameters())


def test_vit_backbone_loads_a_weight_file_and_rejects_bad_settings(tmp_path):
    torch.manual_seed(1)
    arch = "deit_tiny_distilled_patch16_224"
    state = timm.create_model(arch, pretrained=False).state_dict()
    torch.save(state, tmp_path / "w.pth")
    backbone = ViTTokenBackbone(arch, block_index=1, weights=tmp_path / "w.pth")
    assert torch.equal(backbone.model.blocks[1].attn.qkv.weight, state["blocks.1.attn.qkv.weight"])
    assert torch.equal(backbone.model.dist_token, state["dist_token"])
    # A file of another network (DeiT without the distillation token) is refused.
    torch.save(timm.create_model("deit_tiny_patch16_224").state_dict(), tmp_path / "o.pth")
    with pytest.raises(WeightsNotFoundError, match="o.pth does not fit"):
        ViTTokenBackbone(arch, weights=tmp_path / "o.pth")
    with pytest.raises(ConfigError, match="block_index=12"):
        ViTTokenBackbone(arch, block_index=12, weights=None)
    with pytest.raises(ConfigError, match="TimmBackbone"):
        ViTTokenBackbone("resnet18", weights=None)


def test_fastflow_on_vit_tokens_has_no_neck():
    _seed()
    model = FastFlow(
        backbone=dict(
            type="ViTTokenBackbone",
            arch="deit_tiny_distilled_patch16_224",
            block_index=1,
            img_size=32,
            weights=None,
        ),
        head=dict(type="Flow2DHead", flow_steps=2, hidden_ratio=0.16),
        input_size=32,
    )
    assert model.neck is None and model.feature_shapes == [(192, 2, 2)]
    loss = model.loss(torch.randn(2, 3, 32, 32))["loss"]
    assert loss.ndim == 0 and torch.isfinite(loss)
