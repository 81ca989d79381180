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
    if torch.jit.is_tracing() or torch.compiler.is_exporting():
        # An ONNX export: one block, since a traced slice would fix the number of queries
        # (a dynamic-batch graph traced at batch 1 would drop the other images' rows).
        blocks = [queries]
    else:
        blocks = (queries[s : s + chunk] for s in range(0, queries.shape[0], chunk))
    for q in blocks:
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


#: Slack on the lower bound, relative to |q|^2 + max |b|^2: far above the float32 error
#: of the expanded distances (about D * 6e-8), so rounding never prunes the true nearest.
_BOUND_SLACK = 1e-4
_PAIR_BLOCK = 1 << 16  # (query, entry) pairs whose exact distances are taken at once


def _principal_axis(x: torch.Tensor, steps: int = 8) -> torch.Tensor:
    """Leading principal direction of the rows of ``x`` (power iteration, deterministic)."""
    centered = x - x.mean(0)
    v = centered.abs().sum(0) + 1e-12  # a start with no sign cancellation
    for _ in range(steps):
        v = centered.T @ (centered @ v)
        v = v / v.norm().clamp_min(1e-30)
    return v


def principal_tree_order(x: torch.Tensor, leaf: int) -> torch.Tensor:
    """A permutation of the rows of ``x`` that keeps near rows in the same ``leaf`` block.

    Each group is split at the median of its leading principal direction (the split
    point rounded to whole leaves) until groups have ``leaf`` rows.
    """
    groups = [torch.arange(x.shape[0])]
    while any(len(g) > leaf for g in groups):
        split = []
        for g in groups:
            if len(g) <= leaf:
                split.append(g)
                continue
            left = leaf * ((len(g) + leaf - 1) // leaf + 1 >> 1)
            order = (x[g] @ _principal_axis(x[g])).argsort(stable=True)
            split += [g[order[:left]], g[order[left:]]]
        groups = split
    return torch.cat(groups)


class PrunedNearestNeighbors:
    """Exact nearest neighbour over a fixed bank that computes few full distances.

    The bank is rotated onto its principal axes (an orthogonal map: distances are
    unchanged). For a query ``q`` and entry ``b`` with rotated leading parts ``q1, b1``
    (``dim`` axes) and remainders ``q2, b2``,
    ``|q - b|^2 >= |q1 - b1|^2 + (|q2| - |b2|)^2``, which is one inner product of
    ``dim + 1`` numbers (``[q1, |q2|] . [b1, |b2|]``): the bound of every pair costs a
    ``dim + 1``-wide matrix multiply instead of the ``D``-wide one of brute force.

    The bank is stored in blocks of ``block`` near entries (:func:`principal_tree_order`).
    The exact distances to the block with the smallest bound give an upper bound ``u``;
    only blocks whose smallest bound is at most ``u``, and in them only entries whose bound
    is, can hold the nearest entry, and only those get exact distances
    (``sum((q - b)^2)`` over the original coordinates, more accurate than the expanded
    form). Ties go to the lowest index, as ``torch.min`` over brute-force distances does,
    so the result is the brute-force one.

    Args:
        bank: (M, D) tensor; copied once as float32.
        dim: Leading principal axes in the bound. Defaults to 48.
        block: Entries per block. Defaults to 64.
        chunk: Queries per bound block. Defaults to 256.
    """

    def __init__(
        self, bank: torch.Tensor, dim: int = 48, block: int = 64, chunk: int = 256
    ) -> None:
        bank = bank.detach().float().cpu().contiguous()
        m, d = bank.shape
        self.size, self.dim, self.block, self.chunk = m, max(1, min(int(dim), d)), block, chunk
        self.mean = bank.mean(0) if m else bank.new_zeros(d)
        centered = (bank - self.mean).double()
        _, vectors = torch.linalg.eigh(centered.T @ centered)
        self.axes = vectors.flip(1).float().contiguous()  # descending variance
        rotated = (bank - self.mean) @ self.axes
        order = principal_tree_order(rotated, block) if m else torch.arange(0)
        pad = -m % block
        self.order = torch.cat([order, torch.full((pad,), m, dtype=torch.long)])
        self.valid = torch.arange(m + pad) < m
        self.bank = torch.cat([bank[order], bank.new_zeros(pad, d)]).contiguous()
        rotated = torch.cat([rotated[order], rotated.new_zeros(pad, d)])
        self.bound_bank = self._bound_vectors(rotated)
        sq = (rotated * rotated).sum(1)
        self.max_sq = float(sq[:m].max()) if m else 0.0
        self.rotated_sq = sq.masked_fill(~self.valid, float("inf"))  # padding: never near

    def _bound_vectors(self, rotated: torch.Tensor) -> torch.Tensor:
        rest = torch.linalg.vector_norm(rotated[:, self.dim :], dim=1, keepdim=True)
        return torch.cat([rotated[:, : self.dim], rest], 1).contiguous()

    def search(self, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(distances, indices) of the nearest entry, each (Q, 1); ties: lowest index."""
        device = queries.device
        queries = queries.detach().float().cpu()
        if self.size == 0:
            raise ValueError("cannot search an empty bank")
        dists, idxs = [], []
        for start in range(0, queries.shape[0], self.chunk):
            d, i = self._search_chunk(queries[start : start + self.chunk].contiguous())
            dists.append(d)
            idxs.append(i)
        if not dists:
            return queries.new_empty(0, 1).to(device), torch.empty(0, 1, dtype=torch.long)
        return torch.cat(dists).unsqueeze(1).to(device), torch.cat(idxs).unsqueeze(1).to(device)

    def _pair_distances(self, q: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor):
        """Exact squared distances of the (query row, stored entry) pairs."""
        parts = []
        for r, c in zip(rows.split(_PAIR_BLOCK), cols.split(_PAIR_BLOCK)):
            diff = q[r] - self.bank[c]
            parts.append(diff.mul_(diff).sum(1))  # the same rounding as (q - b) ** 2
        return torch.cat(parts) if parts else q.new_empty(0)

    def _search_chunk(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, size = q.shape[0], self.block
        rotated = (q - self.mean) @ self.axes
        q_sq = (rotated * rotated).sum(1, keepdim=True)
        bound = torch.addmm(
            self.rotated_sq.unsqueeze(0), self._bound_vectors(rotated), self.bound_bank.T, alpha=-2
        )
        bound += q_sq
        blocks = bound.view(n, -1, size)
        block_min = blocks.amin(2)  # (n, blocks): vectorised, unlike an argmin over all
        # Upper bound: exact distances to every entry of the most promising block.
        # Upper bound: the exact distance of the entry with the smallest bound.
        first = block_min.argmin(1)
        rows = torch.arange(n)
        first = first * size + blocks[rows, first].argmin(1)
        upper = self._pair_distances(q, rows, first).unsqueeze(1)
        upper += _BOUND_SLACK * (q_sq + self.max_sq)
        rows, kept = (block_min <= upper).nonzero(as_tuple=True)
        inner, offset = (blocks[rows, kept] <= upper[rows]).nonzero(as_tuple=True)
        rows, cols = rows[inner], kept[inner] * size + offset
        exact = self._pair_distances(q, rows, cols)
        best = exact.new_full((n,), float("inf")).scatter_reduce(0, rows, exact, "amin")
        tie = exact == best[rows]
        index = torch.full((n,), self.size, dtype=torch.long)
        index = index.scatter_reduce(0, rows[tie], self.order[cols[tie]], "amin")
        return best.sqrt(), index
