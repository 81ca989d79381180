"""Dinomaly's parts against the paper's equations: the encoder's several blocks and prefix
tokens, layer grouping, the loose group-wise cosine loss with hard mining, linear
attention, the noisy bottleneck, StableAdamW, the map and score; the 9 paper configs at
their real size; DINOv2 weights read from ``backbones/`` (a random stand-in file)."""

import time
from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from adtool.apis import load_config
from adtool.errors import ConfigError
from adtool.models.anomaly.dinomaly import (
    LinearAttention,
    LinearAttentionDecoder,
    LooseCosineLoss,
    NoisyBottleneck,
)
from adtool.models.anomaly.dinomaly.decoder import linear_attention
from adtool.models.anomaly.dinomaly.model import top_ratio_mean
from adtool.models.anomaly.dinomaly.stable_adamw import StableAdamW
from adtool.models.backbones import ViTTokenBackbone
from adtool.registry import MODELS

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "dinomaly"
ARCH = "vit_small_patch14_reg4_dinov2"
TINY_VIT = dict(dynamic_img_size=True, embed_dim=32, num_heads=2, depth=6)


def _tiny_model(**overrides) -> torch.nn.Module:
    cfg = load_config(CONFIGS / "dinomaly_tiny_sample.py").model.to_dict()
    cfg["backbone"]["model_kwargs"] = dict(TINY_VIT)
    cfg.update(overrides)
    return MODELS.build(cfg)


def _block_outputs(vit, x: torch.Tensor) -> list[torch.Tensor]:
    """Every block's full token sequence, run by hand (no forward_intermediates)."""
    tokens = vit.norm_pre(vit._pos_embed(vit.patch_embed(x)))
    outputs = []
    for block in vit.blocks:
        tokens = block(tokens)
        outputs.append(tokens)
    return outputs


# -- encoder: several blocks, class and register tokens kept ------------------------------


def test_backbone_returns_the_listed_blocks_with_prefix_tokens_in_config_order():
    torch.manual_seed(0)
    backbone = ViTTokenBackbone(
        ARCH,
        block_indices=[4, 1, 3],
        prefix_tokens=True,
        norm=False,
        weights=None,
        model_kwargs=TINY_VIT,
    )
    x = torch.randn(2, 3, 56, 56)
    outs = backbone(x)
    ref = _block_outputs(backbone.model, x)
    assert backbone.num_prefix_tokens == 5  # class + 4 registers
    assert [tuple(o.shape) for o in outs] == [(2, 5 + 16, 32)] * 3
    for out, index in zip(outs, [4, 1, 3]):
        torch.testing.assert_close(out, ref[index])
    assert backbone.feature_shapes(56) == [(32, 4, 4)] * 3
    assert backbone.out_channels == [32] * 3
    # Blocks after the last one listed are pruned.
    assert len(backbone.model.blocks) == 5


def test_backbone_single_block_keeps_its_map_output():
    backbone = ViTTokenBackbone(ARCH, block_index=2, weights=None, model_kwargs=TINY_VIT)
    x = torch.randn(1, 3, 56, 56)
    (out,) = backbone(x)
    ref = backbone.model.norm(_block_outputs(backbone.model, x)[2])[:, 5:]
    torch.testing.assert_close(out, ref.transpose(1, 2).reshape(1, 32, 4, 4))


def test_backbone_refuses_an_out_of_range_block():
    with pytest.raises(ConfigError, match=r"block_indices=\[2, 9\].*use 0..5"):
        ViTTokenBackbone(ARCH, block_indices=[2, 9], weights=None, model_kwargs=TINY_VIT)


# -- grouping -----------------------------------------------------------------------------


def test_groups_average_encoder_blocks_and_reversed_decoder_blocks():
    torch.manual_seed(0)
    model = _tiny_model().eval()
    x = torch.randn(2, 3, 56, 56)
    enc, dec = model.features(x)
    blocks = _block_outputs(model.backbone.model, x)
    encoded = [blocks[i] for i in (2, 3, 4, 5)]
    restored = model.decoder(model.neck(torch.stack(encoded).mean(0)))
    assert len(restored) == 4

    def as_map(t):
        return t[:, 5:].transpose(1, 2).reshape(2, 32, 4, 4)

    # Group 0 = encoder blocks 2, 3 (first two listed) vs the LAST two decoder blocks.
    torch.testing.assert_close(enc[0], as_map((encoded[0] + encoded[1]) / 2))
    torch.testing.assert_close(enc[1], as_map((encoded[2] + encoded[3]) / 2))
    torch.testing.assert_close(dec[0], as_map((restored[3] + restored[2]) / 2))
    torch.testing.assert_close(dec[1], as_map((restored[1] + restored[0]) / 2))


def test_bad_groups_and_unfrozen_or_map_encoders_are_refused():
    with pytest.raises(ConfigError, match="groups=.*below the 4 encoder blocks"):
        _tiny_model(groups=[[0, 1], [2, 4]])
    cfg = load_config(CONFIGS / "dinomaly_tiny_sample.py").model.to_dict()
    cfg["backbone"].update(model_kwargs=dict(TINY_VIT), prefix_tokens=False)
    with pytest.raises(ConfigError, match="prefix_tokens=True"):
        MODELS.build(cfg)


# -- map and score ------------------------------------------------------------------------


def test_map_is_the_sum_of_group_cosine_distances_and_score_the_top_one_percent():
    torch.manual_seed(0)
    model = _tiny_model(blur_sigma=0.0).eval()
    x = torch.randn(2, 3, 56, 56)
    scores, maps = model.anomaly_outputs(x)
    enc, dec = model.features(x)
    per_group = [1 - F.cosine_similarity(e, d, dim=1) for e, d in zip(enc, dec)]
    ref = F.interpolate(
        (per_group[0] + per_group[1]).unsqueeze(1), size=(56, 56), mode="bilinear"
    ).squeeze(1)
    torch.testing.assert_close(maps, ref)
    k = int(56 * 56 * 0.01)  # 31 pixels
    torch.testing.assert_close(
        scores, maps.flatten(1).sort(1, descending=True).values[:, :k].mean(1)
    )


def test_top_ratio_mean_is_the_max_for_ratio_zero():
    maps = torch.arange(200.0).view(2, 10, 10)
    assert top_ratio_mean(maps, 0.0).tolist() == [99.0, 199.0]
    assert top_ratio_mean(maps, 0.05).tolist() == [97.0, 197.0]  # mean of the top 5


# -- loose loss with hard mining ----------------------------------------------------------


def _groups(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    enc = [torch.randn(2, 8, 4, 4, generator=g) for _ in range(2)]
    dec = [torch.randn(2, 8, 4, 4, generator=g).requires_grad_() for _ in range(2)]
    return enc, dec


def _global_cosine(enc, dec):
    """Eq. 4: mean over groups of mean over images of 1 - cos(flatten(E), flatten(D))."""
    terms = []
    for e, d in zip(enc, dec):
        a, b = e.flatten(1).double(), d.flatten(1).double()
        cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))
        terms.append((1 - cos).mean())
    return sum(terms) / len(terms)


def test_loss_value_is_the_group_wise_global_cosine_distance():
    enc, dec = _groups()
    loss = LooseCosineLoss(p_final=0.9, factor=0.1)(enc, dec)
    assert loss.item() == pytest.approx(_global_cosine(enc, dec).item(), rel=1e-5)
    # Identical or rescaled restorations cost nothing.
    assert LooseCosineLoss()(enc, [3 * e for e in enc]).item() == pytest.approx(0, abs=1e-6)


def test_hard_mining_damps_the_gradient_of_the_easy_points_only():
    enc, dec = _groups()
    LooseCosineLoss(p_final=0.75, factor=0.1)(enc, dec).backward()
    mined = [d.grad.clone() for d in dec]
    for d in dec:
        d.grad = None
    _global_cosine(enc, dec).backward()
    for e, d, g in zip(enc, dec, mined):
        dist = 1 - F.cosine_similarity(e, d.detach(), dim=1)  # (2, 4, 4): 32 points
        hard = dist >= dist.flatten().topk(8).values[-1]  # the top 1 - 0.75 = 25 %
        assert int(hard.sum()) == 8
        expected = d.grad * torch.where(hard, 1.0, 0.1).unsqueeze(1)
        torch.testing.assert_close(g, expected.float(), rtol=1e-4, atol=1e-7)
    # The encoder side gets no gradient even when it asks for one.
    enc = [e.requires_grad_() for e in enc]
    LooseCosineLoss()(enc, dec).backward()
    assert all(e.grad is None for e in enc)


def test_hard_mining_fraction_ramps_linearly_over_the_warm_up():
    loss = LooseCosineLoss(p_final=0.9, warmup_iters=1000)
    assert [loss.p_at(i) for i in (0, 500, 1000, 4000)] == [0.0, 0.45, 0.9, 0.9]
    # p = 0 (iteration 0): no point is damped, the gradient is the plain one.
    enc, dec = _groups(1)
    loss(enc, dec, iteration=0).backward()
    mined = [d.grad.clone() for d in dec]
    for d in dec:
        d.grad = None
    _global_cosine(enc, dec).backward()
    for g, d in zip(mined, dec):
        torch.testing.assert_close(g, d.grad.float(), rtol=1e-4, atol=1e-7)


# -- linear attention ---------------------------------------------------------------------


def test_linear_attention_is_the_kernelised_attention_with_elu_plus_one():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 4, generator=g, dtype=torch.float64) for _ in range(3))
    phi_q, phi_k = F.elu(q) + 1, F.elu(k) + 1
    weights = phi_q @ phi_k.transpose(-2, -1)  # (.., N, N), all positive: no sparsity
    assert bool((weights > 0).all())
    ref = (weights / weights.sum(-1, keepdim=True)) @ v
    torch.testing.assert_close(linear_attention(q, k, v), ref)


def test_linear_attention_module_splits_heads_and_projects():
    torch.manual_seed(0)
    attn = LinearAttention(dim=8, num_heads=2).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    q, k, v = attn.qkv(x).view(2, 5, 3, 2, 4).permute(2, 0, 3, 1, 4)
    heads = [linear_attention(q[:, h], k[:, h], v[:, h]) for h in range(2)]
    torch.testing.assert_close(attn(x), attn.proj(torch.cat(heads, dim=-1)))
    with pytest.raises(ValueError, match="not divisible"):
        LinearAttention(dim=10, num_heads=4)


def test_decoder_returns_every_block_and_starts_from_the_official_init():
    torch.manual_seed(0)
    decoder = LinearAttentionDecoder(in_channels=16, num_heads=4, depth=8)
    outs = decoder(torch.randn(2, 5, 16))
    assert len(outs) == 8 and all(o.shape == (2, 5, 16) for o in outs)
    weights = torch.cat(
        [m.weight.flatten() for m in decoder.modules() if isinstance(m, torch.nn.Linear)]
    )
    assert weights.abs().max() <= 0.03 and 0.007 < weights.std() < 0.011
    assert decoder.blocks[0].norm1.eps == 1e-8


# -- noisy bottleneck ---------------------------------------------------------------------


def test_noisy_bottleneck_drops_its_input_in_training_only():
    torch.manual_seed(0)
    neck = NoisyBottleneck(in_channels=64, dropout=0.2)
    x = torch.rand(4, 50, 64) + 1.0  # no zeros of its own
    seen = []
    neck.mlp.fc1.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    neck.eval()
    out_eval = neck(x)
    torch.testing.assert_close(seen[-1], x)  # eval: the input passes untouched
    torch.testing.assert_close(out_eval, neck.mlp(x))
    neck.train()
    neck(x)
    dropped = seen[-1] == 0
    assert 0.17 < dropped.float().mean().item() < 0.23
    torch.testing.assert_close(seen[-1][~dropped], (x / 0.8)[~dropped])  # inverted dropout
    assert neck.mlp.drop1.p == 0.2 and neck.mlp.drop2.p == 0.2
    assert neck.mlp.fc1.out_features == 256


# -- StableAdamW --------------------------------------------------------------------------


@pytest.mark.parametrize("amsgrad", [False, True])
def test_stable_adamw_equals_adamw_while_updates_are_not_clipped(amsgrad):
    # A constant gradient gives v_hat = g^2, RMS = 1: no clipping, exactly AdamW.
    torch.manual_seed(0)
    a = torch.randn(10, requires_grad=True)
    b = a.detach().clone().requires_grad_()
    grad = torch.randn(10)
    opt_a = StableAdamW([a], lr=2e-3, weight_decay=1e-4, amsgrad=amsgrad, eps=1e-10)
    opt_b = torch.optim.AdamW([b], lr=2e-3, weight_decay=1e-4, amsgrad=amsgrad, eps=1e-10)
    for _ in range(5):
        for p, opt in ((a, opt_a), (b, opt_b)):
            p.grad = grad.clone()
            opt.step()
    torch.testing.assert_close(a, b)


def test_stable_adamw_divides_the_learning_rate_by_the_update_rms():
    # Step 1: g = 1 everywhere; step 2: a spike g = 10. Direct computation of Algorithm 2.
    p = torch.zeros(4, requires_grad=True)
    opt = StableAdamW([p], lr=0.1, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.5)
    p.grad = torch.ones(4)
    opt.step()
    after1 = p.detach().clone()
    assert after1.tolist() == pytest.approx([-0.1] * 4, rel=1e-6)  # RMS 1: Adam's first step
    p.grad = torch.full((4,), 10.0)
    opt.step()
    m = 0.9 * 0.1 + 0.1 * 10  # exp_avg after two steps
    v = 0.99 * 0.01 + 0.01 * 100
    v_hat = v / (1 - 0.99**2)
    rms = (100 / v_hat) ** 0.5
    assert rms > 1
    lr = 0.1 / rms
    expected = after1 * (1 - lr * 0.5) - lr * (m / (1 - 0.9**2)) / (v_hat**0.5 + 1e-8)
    torch.testing.assert_close(p.detach(), expected, rtol=1e-5, atol=1e-7)


def test_stable_adamw_is_built_from_the_paper_config():
    from mmengine.optim import build_optim_wrapper

    cfg = load_config(CONFIGS / "dinomaly_vit-b14-reg4_448_mvtec.py")
    wrapper = build_optim_wrapper(torch.nn.Linear(2, 2), cfg.optim_wrapper)
    assert isinstance(wrapper.optimizer, StableAdamW)
    group = wrapper.optimizer.param_groups[0]
    assert (group["lr"], group["weight_decay"], group["eps"], group["amsgrad"]) == (
        2e-3,
        1e-4,
        1e-10,
        True,
    )
    assert wrapper.clip_grad_kwargs == {"max_norm": 0.1}


# -- the 9 paper configs at their real size ------------------------------------------------

SIZES = {
    "s": (ARCH, 384, 6),
    "b": ("vit_base_patch14_reg4_dinov2", 768, 12),
    "l": ("vit_large_patch14_reg4_dinov2", 1024, 16),
}
GRID = [(s, r) for s in "sbl" for r in (224, 392, 448)]


def _grid_cfg(size: str, res: int):
    return load_config(CONFIGS / f"dinomaly_vit-{size}14-reg4_{res}_mvtec.py")


@pytest.mark.parametrize(("size", "res"), GRID)
def test_grid_config_names_its_encoder_blocks_and_input(size, res):
    cfg = _grid_cfg(size, res)
    backbone = cfg.model.backbone
    assert backbone.arch == SIZES[size][0] and backbone.weights == "imagenet"
    blocks = [4, 6, 8, 10, 12, 14, 16, 18] if size == "l" else [2, 3, 4, 5, 6, 7, 8, 9]
    assert backbone.block_indices == blocks and backbone.prefix_tokens and not backbone.norm
    steps = {s["type"]: s.get("size") for s in cfg.test_dataloader.dataset.pipeline}
    assert steps["Resize"] == res and steps.get("CenterCrop") == (392 if res == 448 else None)
    assert cfg.train_cfg.max_iters == 5000 and cfg.train_dataloader.batch_size == 16
    assert cfg.multi_class is True
    assert cfg.alias == [f"dinomaly-{dict(s='small', b='base', l='large')[size]}-{res}"]


@pytest.mark.parametrize("size", ["b", "l"])
def test_base_and_large_build_at_full_size_without_running(size):
    # Built on the meta device: the real shapes, no memory, no forward (the large model
    # at 448 -> 392 would need minutes on this CPU).
    start = time.perf_counter()
    with torch.device("meta"):
        model = MODELS.build(
            _grid_cfg(size, 448).model.to_dict()
            | {"data_preprocessor": None}
            | {"backbone": {**_grid_cfg(size, 448).model.backbone, "weights": None}}
        )
    _, width, heads = SIZES[size]
    assert model.backbone.out_channels[0] == width
    assert model.decoder.blocks[0].attn.num_heads == heads and len(model.decoder.blocks) == 8
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    # Bottleneck 2 * 4 C^2 and 8 decoder blocks of 12 C^2 (+ biases and norms).
    assert trained == pytest.approx(8 * width**2 + 8 * 12 * width**2, rel=0.01)
    assert time.perf_counter() - start < 60


def test_small_builds_with_random_weights_and_runs_at_224():
    cfg = _grid_cfg("s", 224).model.to_dict()
    cfg["backbone"]["weights"] = None
    torch.manual_seed(0)
    model = MODELS.build(cfg).eval()
    x = torch.rand(1, 3, 224, 224) * 255
    scores, maps = model.anomaly_outputs(model.data_preprocessor({"inputs": [x[0]]})["inputs"])
    assert maps.shape == (1, 224, 224) and scores.shape == (1,)
    enc, dec = model.features(torch.zeros(1, 3, 224, 224))
    assert [tuple(e.shape) for e in enc] == [(1, 384, 16, 16)] * 2


# -- DINOv2 weights from backbones/ ---------------------------------------------------------


def test_dinov2_weights_are_read_from_the_backbone_folder(tmp_path):
    torch.manual_seed(1)
    stand_in = timm.create_model(ARCH, pretrained=False)
    save_file(stand_in.state_dict(), str(tmp_path / f"{ARCH}.safetensors"))
    cfg = _grid_cfg("s", 392).model.backbone.to_dict()
    cfg.update(backbone_dir=str(tmp_path))
    backbone = MODELS.build(cfg)
    assert backbone.weights_path == str(tmp_path / f"{ARCH}.safetensors")
    loaded = backbone.model.state_dict()
    reference = stand_in.state_dict()
    assert {"cls_token", "reg_token", "pos_embed", "blocks.9.mlp.fc2.weight"} <= set(loaded)
    for key, value in loaded.items():
        torch.testing.assert_close(value, reference[key], msg=key)
    assert "blocks.10.attn.qkv.weight" not in loaded  # pruned after block 9
