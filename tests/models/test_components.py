import pytest
import torch

from adtool.models.components import (
    coverage_radius,
    gaussian_blur,
    greedy_coreset,
    nearest_neighbors,
    random_projection,
)


def _reference_greedy(x: torch.Tensor, n: int, first: int) -> list[int]:
    chosen = [first]
    min_d = torch.cdist(x, x[first : first + 1]).squeeze(1)
    for _ in range(n - 1):
        idx = int(min_d.argmax())
        chosen.append(idx)
        min_d = torch.minimum(min_d, torch.cdist(x, x[idx : idx + 1]).squeeze(1))
    return chosen


def test_greedy_coreset_matches_reference_without_projection():
    x = torch.randn(500, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    sel = greedy_coreset(x.float(), 40, projection_dim=None, seed=3)
    ref = _reference_greedy(x, 40, int(sel[0]))
    assert sel.tolist() == ref
    assert len(set(sel.tolist())) == 40


def test_greedy_coreset_picks_isolated_clusters_first():
    # Three far clusters: after the start point the next two picks come from the others.
    g = torch.Generator().manual_seed(0)
    centers = torch.tensor([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    x = torch.cat([c + torch.randn(50, 2, generator=g) for c in centers])
    sel = greedy_coreset(x, 3, projection_dim=None)
    clusters = {int(i) // 50 for i in sel}
    assert clusters == {0, 1, 2}
    assert coverage_radius(x, sel) < 10


def test_projection_keeps_distances_roughly():
    x = torch.randn(200, 512, generator=torch.Generator().manual_seed(0))
    p = random_projection(x, 128)
    d_full = torch.pdist(x)
    d_proj = torch.pdist(p)
    ratio = d_proj / d_full
    assert p.shape == (200, 128)
    assert 0.8 < ratio.mean() < 1.2
    assert random_projection(x, 1024) is x


def test_nearest_neighbors_matches_cdist_with_small_chunks():
    g = torch.Generator().manual_seed(0)
    q, bank = torch.randn(300, 8, generator=g), torch.randn(120, 8, generator=g)
    d, i = nearest_neighbors(q, bank, k=3, memory_budget=4 * 120 * 7)  # 7 rows per chunk
    ref = torch.cdist(q, bank).topk(3, largest=False)
    assert torch.equal(i, ref.indices)
    assert torch.allclose(d, ref.values, atol=1e-4)
    d1, i1 = nearest_neighbors(q, bank.half(), k=1)
    assert (i1.squeeze(1) == ref.indices[:, 0]).float().mean() > 0.95


def test_gaussian_blur_preserves_mass_and_spreads_peak():
    x = torch.zeros(1, 1, 41, 41)
    x[0, 0, 20, 20] = 1.0
    y = gaussian_blur(x, 4.0)
    assert torch.isclose(y.sum(), torch.tensor(1.0), atol=1e-4)
    assert y[0, 0, 20, 20] < 0.02
    # Std of the blurred impulse along one axis is sigma.
    coords = torch.arange(41.0) - 20
    var = (y[0, 0].sum(0) * coords**2).sum()
    assert abs(var.sqrt().item() - 4.0) < 0.1
    assert gaussian_blur(x, 0) is x


def test_pruned_greedy_selects_exactly_what_plain_greedy_selects():
    g = torch.Generator().manual_seed(4)
    centers = torch.randn(30, 24, generator=g, dtype=torch.float64) * 4
    x = centers.repeat_interleave(100, 0) + torch.randn(3000, 24, generator=g, dtype=torch.float64)
    plain = greedy_coreset(x, 400, projection_dim=16, method="plain")
    pruned = greedy_coreset(x, 400, projection_dim=16, method="pruned")
    assert torch.equal(plain, pruned)
    # float32 gives the same coverage (ties may break differently in rounding).
    r32 = coverage_radius(x.float(), greedy_coreset(x.float(), 400, projection_dim=16))
    assert abs(r32 - coverage_radius(x, plain)) / coverage_radius(x, plain) < 0.05


def test_coreset_rejects_unknown_method():
    import pytest

    with pytest.raises(ValueError, match="pruned"):
        greedy_coreset(torch.randn(10, 2), 3, method="fast")


def test_optional_dependency_missing_vs_broken(monkeypatch):
    """A missing faiss means "not available"; a faiss that fails to import is an error."""
    import builtins
    import sys

    from adtool.models.components.knn import faiss_available

    real_import = builtins.__import__

    def fake_import(missing_name):
        def _import(name, *args, **kwargs):
            if name == "faiss":
                raise ModuleNotFoundError(f"No module named '{missing_name}'", name=missing_name)
            return real_import(name, *args, **kwargs)

        return _import

    monkeypatch.delitem(sys.modules, "faiss", raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import("faiss"))
    assert faiss_available() is False
    monkeypatch.setattr(builtins, "__import__", fake_import("_swigfaiss"))
    with pytest.raises(ModuleNotFoundError, match="_swigfaiss"):
        faiss_available()
