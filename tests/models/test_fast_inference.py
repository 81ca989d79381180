"""The optimised test path: folded backbones, pruned exact k-NN, same scores as the reference."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from adtool.models.backbones import TimmBackbone
from adtool.models.components.knn import PrunedNearestNeighbors, nearest_neighbors
from adtool.models.fast_inference import fold_batchnorm, reference_inference
from adtool.registry import MODELS, register_all_modules


def _randomise_batchnorm(module: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial statistics, so folding is not the identity."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.2)


@pytest.mark.parametrize("arch", ["tf_efficientnet_lite0", "resnet18"])
def test_folded_backbone_matches_unfolded(arch):
    torch.manual_seed(0)
    backbone = TimmBackbone(arch, out_indices=(2, 3), weights=None)
    _randomise_batchnorm(backbone.model)
    x = torch.randn(2, 3, 96, 96)
    keys = list(backbone.state_dict())
    folded, pairs = fold_batchnorm(backbone.model, x[:1])
    bns = sum(isinstance(m, torch.nn.BatchNorm2d) for m in backbone.model.modules())
    assert pairs == bns  # every batch-norm of these nets follows a conv
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    with torch.no_grad():
        ref = backbone.model(x)
        backbone.fast_inference = True  # what an anomaly model's eval() sets
        got = backbone(x)
    for r, f, g in zip(ref, folded(x), got):
        scale = float(r.abs().max())
        assert float((r - f).abs().max()) <= 1e-5 * scale
        assert float((r - g).abs().max()) <= 1e-5 * scale
        assert g.is_contiguous()
    # The registered network and its checkpoint keys are untouched.
    assert list(backbone.state_dict()) == keys
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in backbone.model.modules())


def _brute_force(queries: torch.Tensor, bank: torch.Tensor):
    d = torch.stack([((q - bank) ** 2).sum(1) for q in queries])
    val, idx = d.min(1)  # first index among equal distances
    return val.sqrt(), idx


@pytest.mark.parametrize(
    ("m", "d", "dim", "block"), [(300, 16, 4, 64), (1000, 40, 8, 32), (257, 12, 12, 64)]
)
def test_pruned_search_is_brute_force(m, d, dim, block):
    g = torch.Generator().manual_seed(m)
    scale = torch.logspace(0, -2, d)  # a decaying spectrum, as real features have
    bank = torch.randn(m, d, generator=g) * scale
    bank[10:20] = bank[3]  # exact duplicates: ties
    bank[50:60] = torch.round(bank[50:60] * 4) / 4
    queries = torch.cat(
        [
            torch.randn(200, d, generator=g) * scale,
            bank[3:4].repeat(3, 1),  # distance 0 to eleven entries
            bank[[0, 25, m - 1]],
            torch.round(torch.randn(20, d, generator=g) * 4) / 4 * scale,
        ]
    )
    dist, idx = PrunedNearestNeighbors(bank, dim=dim, block=block, chunk=64).search(queries)
    ref_dist, ref_idx = _brute_force(queries, bank)
    assert torch.equal(idx[:, 0], ref_idx)
    assert torch.equal(dist[:, 0], ref_dist)
    assert idx[200:203, 0].tolist() == [3, 3, 3]
    # Today's expanded-form search finds the same neighbours here (no near-ties).
    _, mm_idx = nearest_neighbors(queries[:200], bank)
    assert torch.equal(mm_idx[:, 0], ref_idx[:200])


def test_pruned_search_single_entry_and_empty_queries():
    bank = torch.randn(1, 5)
    index = PrunedNearestNeighbors(bank)
    dist, idx = index.search(torch.randn(4, 5))
    assert idx.flatten().tolist() == [0, 0, 0, 0]
    assert index.search(torch.empty(0, 5))[0].shape == (0, 1)


def _tiny_patchcore():
    register_all_modules()
    return MODELS.build(
        dict(
            type="PatchCore",
            backbone=dict(
                type="TimmBackbone", arch="tf_efficientnet_lite0", out_indices=(2, 3), weights=None
            ),
            neck=dict(type="LocalPatchAggregator"),
            head=dict(type="KNNMemoryHead", coreset_ratio=0.25, num_neighbors=3),
            data_preprocessor=dict(
                type="AnomalyDataPreprocessor", mean=[127.5] * 3, std=[127.5] * 3
            ),
        )
    )


def test_reference_and_optimised_scores_agree():
    torch.manual_seed(0)
    model = _tiny_patchcore()
    _randomise_batchnorm(model.backbone.model)
    train = torch.rand(6, 3, 64, 64)
    model.eval()
    with reference_inference():  # fit on reference features (fitting is unaffected anyway)
        model.fit_embeddings(model.embed(train))
    assert model.backbone.fast_inference and model.head.fast_inference
    test = torch.rand(4, 3, 64, 64)
    fast_scores, fast_maps = model.outputs(test)
    model.inference_optimized = False
    assert not model.backbone.fast_inference
    ref_scores, ref_maps = model.outputs(test)
    assert torch.allclose(fast_scores, ref_scores, rtol=1e-4, atol=1e-5)
    assert torch.allclose(fast_maps, ref_maps, rtol=1e-4, atol=1e-5)
    model.inference_optimized = True
    with reference_inference():
        again, _ = model.outputs(test)
    assert torch.equal(again, ref_scores)
    # Training mode never takes the optimised path.
    model.train()
    assert not model.backbone.fast_inference and not model.head.fast_inference


def test_inference_import_does_not_pull_transformers():
    code = (
        "import sys, adtool.apis.inference; "
        "heavy = [m for m in ('transformers', 'torchmetrics') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_efficientad_channels_last_path_matches_reference():
    """EfficientAD's optimised test path (channels-last teacher, student, autoencoder)
    gives the reference scores and maps up to float error, and keeps its copies."""
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(
        dict(
            type="EfficientAD",
            data_preprocessor=dict(type="AnomalyDataPreprocessor", mean=[0.0] * 3, std=[1.0] * 3),
            teacher=dict(type="PDNBackbone", size="small", width=0.125, weights=None),
            input_size=64,
            width=0.125,
            penalty_dir=None,
        )
    ).eval()
    model.quantiles_st.copy_(torch.tensor([0.01, 0.2]))  # not the identity normalisation
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        with reference_inference():
            ref_scores, ref_maps = model.outputs(x)
        scores, maps = model.outputs(x)
        again = model.outputs(x)[0]
    assert set(model._folded._nets) == {"teacher", "student", "autoencoder"}
    assert all(n._net is not None for n in model._folded._nets.values())
    assert not torch.equal(ref_maps, torch.zeros_like(ref_maps))
    torch.testing.assert_close(scores, ref_scores, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(maps, ref_maps, rtol=1e-5, atol=1e-6)
    assert torch.equal(again, scores)
    model.train()  # training never takes the copies
    assert not model.fast_inference
