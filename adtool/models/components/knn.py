"""Exact nearest-neighbour search by chunked matrix multiplication."""

from __future__ import annotations

import torch

DEFAULT_MEMORY_BUDGET = 256 * 2**20  # bytes of one (chunk x bank) distance block
MAX_CHUNK = 1024


def nearest_neighbors(
    queries: torch.Tensor,
    bank: torch.Tensor,
    k: int = 1,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean k nearest neighbours of each query row in ``bank``.

    Uses ``|q|^2 - 2 q.b + |b|^2`` so the work is one matrix multiply per chunk of
    queries; the chunk is sized so that a distance block stays under ``memory_budget``
    bytes (peak extra memory is about that plus the outputs).

    Args:
        queries: (Q, D) tensor.
        bank: (M, D) tensor; may be half precision (computed in float32).
        k: Neighbours per query (clipped to M). Defaults to 1.
        memory_budget: Bytes allowed for one distance block. Defaults to 256 MiB.

    Returns:
        (distances, indices), each (Q, k), distances ascending.
    """
    k = min(k, bank.shape[0])
    bank = bank.float()
    queries = queries.float()
    bank_sq = (bank * bank).sum(1)
    # Blocks of at most MAX_CHUNK rows: measured fastest here (the block stays in cache
    # for the min pass); fewer when the memory budget asks for it.
    chunk = max(1, min(MAX_CHUNK, memory_budget // (4 * max(1, bank.shape[0]))))
    dists, idxs = [], []
    for start in range(0, queries.shape[0], chunk):
        q = queries[start : start + chunk]
        # |q|^2 is the same along a row, so it is added after the min/top-k.
        d = torch.addmm(bank_sq.unsqueeze(0), q, bank.T, alpha=-2)
        if k == 1:
            val, idx = d.min(1, keepdim=True)
        else:
            val, idx = d.topk(k, dim=1, largest=False)
        val += (q * q).sum(1, keepdim=True)
        dists.append(val.clamp_min_(0).sqrt_())
        idxs.append(idx)
    return torch.cat(dists), torch.cat(idxs)


SEARCH_BACKENDS = ("auto", "torch", "faiss")


def faiss_available() -> bool:
    """True when the optional ``faiss-cpu`` package imports."""
    try:
        import faiss  # noqa: F401
    except ModuleNotFoundError as e:
        if e.name != "faiss":  # faiss is there but broken: say so, not "not installed"
            raise
        return False
    return True


def resolve_search_backend(backend: str) -> str:
    """``'auto'`` -> ``'faiss'`` when installed, else ``'torch'``; validates the name."""
    if backend not in SEARCH_BACKENDS:
        raise ValueError(f"search backend must be one of {SEARCH_BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "faiss" if faiss_available() else "torch"
    if backend == "faiss" and not faiss_available():
        raise ImportError("search='faiss' needs the faiss-cpu package: pip install faiss-cpu")
    return backend


class FaissFlatIndex:
    """Exact L2 search with faiss (``IndexFlatL2``) over a fixed bank.

    Args:
        bank: (M, D) tensor; copied once as float32.
    """

    def __init__(self, bank: torch.Tensor) -> None:
        import faiss

        data = bank.detach().float().cpu().contiguous().numpy()
        self.index = faiss.IndexFlatL2(data.shape[1])
        self.index.add(data)
        self.size = data.shape[0]

    def search(self, queries: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Same contract as :func:`nearest_neighbors`: (distances, indices), each (Q, k)."""
        k = min(k, self.size)
        q = queries.detach().float().cpu().contiguous().numpy()
        sq_dist, idx = self.index.search(q, k)
        dist = torch.from_numpy(sq_dist).clamp_min_(0).sqrt_()
        return dist.to(queries.device), torch.from_numpy(idx).to(queries.device)
