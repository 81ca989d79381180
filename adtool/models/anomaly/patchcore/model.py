"""PatchCore.

"Towards Total Recall in Industrial Anomaly Detection", Roth et al., CVPR 2022,
https://arxiv.org/abs/2106.08265. A memory bank of locally aware patch features from a
frozen ImageNet backbone, subsampled by greedy coreset; a test patch scores its distance
to the nearest bank entry, the image its worst patch (reweighted).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from einops import rearrange

from adtool.models.anomaly.base import MemoryBankModel
from adtool.registry import MODELS


@MODELS.register_module()
class PatchCore(MemoryBankModel):
    """Backbone + :class:`LocalPatchAggregator` neck + :class:`KNNMemoryHead`.

    Args:
        backbone: Config of the frozen feature extractor.
        neck: Config of the patch aggregation.
        head: Config of the memory-bank head.
        blur_sigma: Std of the Gaussian smoothing of the upsampled map, in pixels.
            Defaults to 4 (paper).
        data_preprocessor: Config of the batch normaliser. Defaults to None.
        init_cfg: mmengine init config. Defaults to None.
    """

    def __init__(
        self,
        backbone: dict,
        neck: dict,
        head: dict,
        blur_sigma: float = 4.0,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck)
        self.head = MODELS.build(head)
        self.blur_sigma = blur_sigma

    def patch_embeddings(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, D, h, w) locally aware patch features."""
        return self.neck(self.backbone(inputs))

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        return rearrange(self.patch_embeddings(inputs), "b d h w -> (b h w) d")

    def fit_embeddings(self, embeddings: torch.Tensor) -> None:
        self.head.fit(embeddings)

    @torch.no_grad()
    def anomaly_outputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patch_scores, image_scores = self.head(self.patch_embeddings(inputs))
        return image_scores, self.to_input_map(patch_scores, inputs.shape[-2:], self.blur_sigma)

    @contextlib.contextmanager
    def export_mode(self) -> Iterator[None]:
        """Search the bank with torch's matmul k-NN while traced (faiss is NumPy, not a
        graph); both are exact, so the exported scores are the same."""
        search, self.head.search = self.head.search, "torch"
        try:
            yield
        finally:
            self.head.search = search
