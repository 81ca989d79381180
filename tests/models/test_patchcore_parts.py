import torch

from adtool.models.anomaly.patchcore import KNNMemoryHead, LocalPatchAggregator
from adtool.registry import MODELS


def test_aggregator_averages_3x3_neighbourhood_and_aligns_levels():
    fine = torch.zeros(1, 2, 8, 8)
    fine[0, 0, 4, 4] = 9.0
    coarse = torch.ones(1, 3, 4, 4)
    out = LocalPatchAggregator(kernel_size=3)([fine, coarse])
    assert out.shape == (1, 5, 8, 8)
    assert torch.allclose(out[0, 0, 3:6, 3:6], torch.ones(3, 3))
    assert out[0, 0, 2, 2] == 0
    # Interior of a constant coarse level stays 1 after pooling and upsampling.
    assert torch.allclose(out[0, 2:, 3:5, 3:5], torch.ones(3, 2, 2))


def test_aggregator_embed_dim_pools_channels():
    feats = [torch.randn(2, 6, 4, 4), torch.randn(2, 10, 2, 2)]
    out = LocalPatchAggregator(embed_dim=4)(feats)
    assert out.shape == (2, 4, 4, 4)


def test_head_scores_are_nearest_bank_distances_and_reweighted():
    g = torch.Generator().manual_seed(0)
    train = torch.randn(400, 8, generator=g)
    head = KNNMemoryHead(coreset_ratio=0.25, num_neighbors=3, projection_dim=None)
    head.fit(train)
    assert head.memory_bank.shape == (100, 8)
    test = torch.randn(2, 8, 3, 3, generator=g)
    test[1, :, 1, 1] += 10  # an outlier patch in image 1
    patch, image = head(test)
    flat = test.permute(0, 2, 3, 1).reshape(-1, 8)
    expected = torch.cdist(flat, head.memory_bank).min(1).values.view(2, 3, 3)
    assert torch.allclose(patch, expected, atol=1e-4)
    assert patch[1].argmax() == 4
    # Reweighting scales the worst patch score by a factor in (0, 1].
    ratio = image / patch.flatten(1).max(1).values
    assert torch.all(ratio > 0) and torch.all(ratio <= 1)
    assert image[1] > 3 * image[0]


def test_head_bank_survives_state_dict_roundtrip_and_half_precision():
    head = KNNMemoryHead(coreset_ratio=0.5, half_precision_bank=True)
    head.fit(torch.randn(50, 4))
    assert head.memory_bank.dtype == torch.float16
    fresh = KNNMemoryHead(coreset_ratio=0.5, half_precision_bank=True)
    fresh.load_state_dict(head.state_dict())
    assert torch.equal(fresh.memory_bank, head.memory_bank)


def test_patchcore_predicts_score_and_full_size_smoothed_map():
    model = MODELS.build(
        dict(
            type="PatchCore",
            data_preprocessor=dict(
                type="AnomalyDataPreprocessor", mean=[127.5] * 3, std=[127.5] * 3
            ),
            backbone=dict(type="TimmBackbone", arch="resnet18", out_indices=(2, 3), weights=None),
            neck=dict(type="LocalPatchAggregator"),
            head=dict(type="KNNMemoryHead", coreset_ratio=0.5),
        )
    )
    imgs = [torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8) for _ in range(4)]
    model.fit_step({"inputs": imgs[:3], "data_samples": None})
    model.fit()
    assert model.head.memory_bank.shape == (3 * 8 * 8 // 2, 384)
    data = model.data_preprocessor({"inputs": imgs, "data_samples": None}, False)
    samples = model(data["inputs"], None, mode="predict")
    assert len(samples) == 4 and samples[0].anomaly_map.shape == (64, 64)
    # A training image is in-distribution: its map is lower than a novel image's.
    assert samples[3].pred_score > samples[0].pred_score


def test_faiss_and_torch_search_agree():
    import pytest

    from adtool.models.components.knn import faiss_available

    if not faiss_available():
        pytest.skip("faiss-cpu not installed")
    g = torch.Generator().manual_seed(0)
    train = torch.randn(300, 16, generator=g)
    test = torch.randn(2, 16, 4, 4, generator=g)
    outputs = {}
    for backend in ("torch", "faiss"):
        head = KNNMemoryHead(coreset_ratio=0.5, num_neighbors=4, search=backend)
        head.fit(train)
        outputs[backend] = head(test)
    assert torch.allclose(outputs["torch"][0], outputs["faiss"][0], atol=1e-3)
    assert torch.allclose(outputs["torch"][1], outputs["faiss"][1], atol=1e-3)


def test_faiss_requested_without_package_says_how_to_install(monkeypatch):
    import pytest

    from adtool.models.components import knn

    monkeypatch.setattr(knn, "faiss_available", lambda: False)
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        KNNMemoryHead(search="faiss")
    assert KNNMemoryHead(search="auto").search == "torch"


def test_search_memory_bound_gives_same_scores():
    g = torch.Generator().manual_seed(1)
    train, test = torch.randn(500, 8, generator=g), torch.randn(3, 8, 5, 5, generator=g)
    small = KNNMemoryHead(coreset_ratio=0.5, search_memory_mb=0)  # one query row per block
    big = KNNMemoryHead(coreset_ratio=0.5)
    small.fit(train)
    big.fit(train)
    assert torch.allclose(small(test)[0], big(test)[0])
