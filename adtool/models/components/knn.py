"""Exact nearest-neighbour search by chunked matrix multiplication."""

from __future__ import annotations

import torch

DEFAULT_MEMORY_BUDGET = 256 * 2**20  # bytes of one (chunk x bank) distance block


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
    chunk = max(1, memory_budget // (4 * max(1, bank.shape[0])))
    dists, idxs = [], []
    for start in range(0, queries.shape[0], chunk):
        q = queries[start : start + chunk]
        d = torch.addmm(bank_sq.unsqueeze(0), q, bank.T, alpha=-2)
        d += (q * q).sum(1, keepdim=True)
        if k == 1:
            val, idx = d.min(1, keepdim=True)
        else:
            val, idx = d.topk(k, dim=1, largest=False)
        dists.append(val.clamp_min_(0).sqrt_())
        idxs.append(idx)
    return torch.cat(dists), torch.cat(idxs)
