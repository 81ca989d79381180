"""Memory bank of nominal patch features with k-NN scoring (PatchCore)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from adtool.models.components import greedy_coreset, nearest_neighbors
from adtool.models.components.knn import (
    FaissFlatIndex,
    PrunedNearestNeighbors,
    resolve_search_backend,
)
from adtool.models.fast_inference import fast_inference_enabled
from adtool.registry import MODELS


@MODELS.register_module()
class KNNMemoryHead(nn.Module):
    """Coreset-subsampled memory bank; patch score = distance to the nearest entry.

    The image score is the largest patch score, reweighted as in the paper (Eq. 7):
    ``s = (1 - softmax(-)[m*]) * s*`` over the distances from the worst test patch to
    the ``num_neighbors`` bank entries nearest its own nearest entry ``m*``. A test
    patch whose nearest entry sits in a sparse region of the bank is trusted less.

    Args:
        coreset_ratio: Fraction of training patches kept. Defaults to 0.1.
        num_neighbors: b, the neighbourhood size of the reweighting. Defaults to 9.
        projection_dim: Random projection size used during coreset selection.
            Defaults to 128 (paper).
        seed: Seed of the projection and the first coreset point. Defaults to 0.
        half_precision_bank: Store the bank as float16 (half the memory; distances are
            still computed in float32). Defaults to False.
        coreset_method: ``'pruned'`` or ``'plain'``, both the exact greedy (see
            :func:`greedy_coreset`). Defaults to ``'pruned'``.
        search: Nearest-neighbour backend: ``'torch'`` (chunked matrix multiply, peak
            extra memory about ``search_memory_mb``), ``'faiss'`` (exact
            ``IndexFlatL2``; needs faiss-cpu) or ``'auto'`` (faiss when installed).
            Defaults to ``'torch'``.
        search_memory_mb: Bound on one distance block of the torch search, in MiB.
            Defaults to 256.
        prune_dim: Principal axes of the lower bound of the pruned exact search that the
            torch backend uses at test time (:class:`PrunedNearestNeighbors`; the same
            neighbours as brute force). Defaults to 48.
    """

    def __init__(
        self,
        coreset_ratio: float = 0.1,
        num_neighbors: int = 9,
        projection_dim: int | None = 128,
        seed: int = 0,
        half_precision_bank: bool = False,
        coreset_method: str = "pruned",
        search: str = "torch",
        search_memory_mb: int = 256,
        prune_dim: int = 48,
    ) -> None:
        super().__init__()
        if not 0 < coreset_ratio <= 1:
            raise ValueError(f"coreset_ratio must be in (0, 1], got {coreset_ratio}")
        self.coreset_ratio = coreset_ratio
        self.num_neighbors = num_neighbors
        self.projection_dim = projection_dim
        self.seed = seed
        self.half_precision_bank = half_precision_bank
        self.coreset_method = coreset_method
        self.search = resolve_search_backend(search)
        self.search_memory_bytes = int(search_memory_mb) * 2**20
        self._faiss_index: FaissFlatIndex | None = None
        self.prune_dim = prune_dim
        self._pruned: tuple[tuple, PrunedNearestNeighbors] | None = None
        # Set by the anomaly model's train()/eval(): search with PrunedNearestNeighbors.
        self.fast_inference = False
        self.register_buffer("memory_bank", torch.empty(0, 0))

    @property
    def is_fitted(self) -> bool:
        return self.memory_bank.numel() > 0

    def fit(self, embeddings: torch.Tensor) -> None:
        """Select the coreset of (N, D) training patch embeddings as the memory bank."""
        n = max(1, int(embeddings.shape[0] * self.coreset_ratio))
        if n < embeddings.shape[0]:
            idx = greedy_coreset(
                embeddings, n, self.projection_dim, self.seed, method=self.coreset_method
            )
            bank = embeddings[idx]
        else:
            bank = embeddings
        dtype = torch.float16 if self.half_precision_bank else torch.float32
        self.memory_bank = bank.to(dtype).contiguous()
        self._faiss_index = None

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The bank's size is only known after fitting: take the checkpoint's shape.
        key = prefix + "memory_bank"
        if key in state_dict:
            self.memory_bank = torch.empty_like(state_dict[key])
            self._faiss_index = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, D, h, w) embeddings -> patch scores (B, h, w) and image scores (B,)."""
        if not self.is_fitted:
            raise RuntimeError("KNNMemoryHead has no memory bank: fit the model first")
        b, _, h, w = embeddings.shape
        queries = rearrange(embeddings, "b d h w -> (b h w) d")
        dist, idx = self.search_bank(queries, k=1)
        patch_scores = dist.view(b, h * w)
        nn_index = idx.view(b, h * w)
        worst = patch_scores.argmax(1)
        rows = torch.arange(b, device=embeddings.device)
        s_star = patch_scores[rows, worst]
        image_scores = s_star * self._reweight(
            queries.view(b, h * w, -1)[rows, worst], nn_index[rows, worst]
        )
        return patch_scores.view(b, h, w), image_scores

    def search_bank(self, queries: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Distances and indices of the ``k`` nearest bank entries of each query row."""
        if self.search == "faiss":
            if self._faiss_index is None:
                self._faiss_index = FaissFlatIndex(self.memory_bank)
            return self._faiss_index.search(queries, k)
        if k == 1 and self.fast_inference and fast_inference_enabled():
            return self._pruned_index().search(queries)
        return nearest_neighbors(queries, self.memory_bank, k, self.search_memory_bytes)

    def _pruned_index(self) -> PrunedNearestNeighbors:
        """The pruned index of the current bank (rebuilt when the bank changes)."""
        bank = self.memory_bank
        key = (id(bank), bank._version, bank.dtype, bank.device)
        if self._pruned is None or self._pruned[0] != key:
            self._pruned = (key, PrunedNearestNeighbors(bank, self.prune_dim))
        return self._pruned[1]

    def _reweight(self, test_patch: torch.Tensor, nn_index: torch.Tensor) -> torch.Tensor:
        """1 - softmax weight of m* among its b bank neighbours, for each image (B,)."""
        bank = self.memory_bank.float()
        _, support = self.search_bank(bank[nn_index], k=self.num_neighbors)
        # support[:, 0] is m* itself (distance 0 to itself).
        dist = torch.linalg.vector_norm(test_patch.unsqueeze(1).float() - bank[support], dim=-1)
        return 1 - F.softmax(dist, dim=1)[:, 0]
