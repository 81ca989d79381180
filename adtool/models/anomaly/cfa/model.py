"""CFA (Coupled-hypersphere-based Feature Adaptation).

"CFA: Coupled-hypersphere-based Feature Adaptation for Target-Oriented Anomaly
Localization", Lee, Lee and Song, IEEE Access 2022, https://arxiv.org/abs/2206.04325.
A CoordConv patch descriptor on a frozen ImageNet CNN is trained so that normal patch
features fall inside small hyperspheres around a memory bank of centroids (the per-position
mean of the training descriptors); a patch scores its softmin-weighted squared distance to
the nearest centroid, an image its worst (blurred) position.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.dist import all_reduce, get_world_size
from torch import nn

from adtool.errors import ConfigError, DataError
from adtool.models.anomaly.base import BaseAnomalyModel
from adtool.models.backbones.feature_info import fill_from_backbone
from adtool.registry import MODELS
from adtool.structures import AnomalyDataSample


def squared_distances(features: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """(B, P, C) descriptors, (M, C) centroids -> (B, P, M) squared Euclidean distances.

    ``|f|^2 + |c|^2 - 2 f.c`` (one matrix multiply; differentiable in ``features``).
    """
    return (
        features.square().sum(-1, keepdim=True) + memory.square().sum(-1) - 2 * features @ memory.T
    )


def compress_memory(memory: torch.Tensor, gamma_c: int, seed: int = 0) -> torch.Tensor:
    """(M, C) centroids -> (M // gamma_c, C) k-means centres (sklearn); gamma_c 1 keeps them."""
    if gamma_c == 1:
        return memory
    from sklearn.cluster import KMeans

    kmeans = KMeans(n_clusters=memory.shape[0] // gamma_c, max_iter=3000, random_state=seed)
    centres = kmeans.fit(memory.double().cpu().numpy()).cluster_centers_
    return torch.as_tensor(centres, dtype=memory.dtype, device=memory.device)


def softmin_score(distances: torch.Tensor, k: int) -> torch.Tensor:
    """(..., M) squared distances -> (...) ``softmin(d_1..d_k)_1 * d_1`` over the k nearest."""
    k = min(k, distances.shape[-1])
    nearest = distances.clamp_min(0).topk(k, dim=-1, largest=False).values
    return F.softmin(nearest, dim=-1)[..., 0] * nearest[..., 0]


class CentroidMemory(nn.Module):
    """CFA's memory bank: an (M, C) buffer ``centroids``, empty until it is set.

    A checkpoint's bank loads with its own size (known only after ``before_train``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("centroids", torch.empty(0, 0))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "centroids"
        if key in state_dict:
            self.centroids = torch.empty_like(state_dict[key])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


@MODELS.register_module()
class CFA(BaseAnomalyModel):
    """Frozen backbone + :class:`PatchDescriptor` + centroid memory + :class:`CFALoss`.

    ``before_train`` builds the memory bank once, with the descriptor as initialised: the
    mean over the training images of the descriptor at each grid position (H_0 x W_0
    centroids, or ``H_0 W_0 // gamma_c`` k-means centres of them). The bank (buffer
    ``memory.centroids``) is saved in the checkpoint and stays fixed while the descriptor
    trains; a resumed or loaded model keeps its bank.

    Map: for each position, the squared distances ``d_1 <= ... <= d_K`` to its K nearest
    centroids give ``softmin(d)_1 * d_1``; upsampled bilinearly to the input and blurred.

    Args:
        backbone: Config of the frozen feature extractor (paper: layers 1-3).
        descriptor: Config of the trained patch descriptor; ``in_channels`` is filled
            from the backbone.
        loss: Config of the loss (``CFALoss``: K, J, radius).
        gamma_c: Memory compression: ``H_0 W_0 // gamma_c`` centroids. Defaults to 1
            (the paper).
        num_nearest: K of the map's softmin. Defaults to 3 (the paper).
        blur_sigma: Std of the map's Gaussian blur, in pixels. Defaults to 4 (the
            official code).
        data_preprocessor: Config of the batch normaliser. Defaults to None.
        init_cfg: mmengine init config. Defaults to None.
    """

    def __init__(
        self,
        backbone: dict,
        descriptor: dict,
        loss: dict,
        gamma_c: int = 1,
        num_nearest: int = 3,
        blur_sigma: float = 4.0,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if gamma_c < 1 or num_nearest < 1:
            raise ConfigError(
                f"CFA needs gamma_c >= 1 and num_nearest >= 1, got {gamma_c} and "
                f"{num_nearest}; fix model.gamma_c / model.num_nearest"
            )
        self.backbone = MODELS.build(backbone)
        if getattr(self.backbone, "frozen", True) is False:
            raise ConfigError("CFA's backbone must be frozen; set model.backbone.frozen=True")
        self.backbone.requires_grad_(False)
        self.descriptor = MODELS.build(
            fill_from_backbone(descriptor, self.backbone, in_channels="out_channels")
        )
        self.criterion = MODELS.build(loss)
        self.gamma_c = gamma_c
        self.num_nearest = num_nearest
        self.blur_sigma = blur_sigma
        self.memory = CentroidMemory()  # (M, C) centroids, set by before_train

    def train(self, mode: bool = True) -> CFA:
        super().train(mode)
        self.backbone.eval()
        return self

    @property
    def memory_bank(self) -> torch.Tensor:
        """(M, C) centroids (empty before ``before_train``)."""
        return self.memory.centroids

    def describe(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised images -> (B, C, h, w) patch descriptors."""
        with torch.no_grad():
            features = self.backbone(inputs)
        return self.descriptor(features)

    @torch.no_grad()
    def before_train(self, train_loader) -> None:
        """Build the memory bank: the per-position mean of the training descriptors.

        Skipped when the model already has a bank (resumed or loaded from a checkpoint),
        so that a resumed run keeps the bank its descriptor was trained towards. With
        several processes each rank sums its share and the sums are all-reduced (the
        sampler's padding counts its few repeated images twice).
        """
        if self.memory_bank.numel():
            return
        total, count = None, 0
        for batch in train_loader:
            data = self.data_preprocessor(batch, False)
            desc = self.describe(data["inputs"]).double()
            total = desc.sum(0) if total is None else total + desc.sum(0)
            count += desc.shape[0]
        if total is None:
            raise DataError("CFA's memory bank needs training images; the train split is empty")
        count = torch.tensor(float(count), dtype=torch.float64, device=total.device)
        if get_world_size() > 1:
            all_reduce(total, op="sum")
            all_reduce(count, op="sum")
        mean = (total / count).float()  # (C, h, w)
        memory = mean.flatten(1).T.contiguous()  # (h w, C), row-major positions
        self.memory.centroids = compress_memory(memory, self.gamma_c)

    def _distances(self, inputs: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        if not self.memory_bank.numel():
            raise RuntimeError("CFA has no memory bank: train the model first (before_train)")
        desc = self.describe(inputs)
        features = desc.flatten(2).transpose(1, 2)  # (B, h w, C)
        return squared_distances(features, self.memory_bank), tuple(desc.shape[-2:])

    def loss(self, inputs: torch.Tensor, data_samples: list[AnomalyDataSample] | None) -> dict:
        distances, _ = self._distances(inputs)
        return self.criterion(distances)

    @torch.no_grad()
    def anomaly_outputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        distances, (h, w) = self._distances(inputs)
        patch = softmin_score(distances, self.num_nearest)
        maps = self.to_input_map(patch.view(-1, h, w), inputs.shape[-2:], self.blur_sigma)
        return self.image_score_from_map(maps), maps
