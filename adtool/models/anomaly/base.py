"""Base classes of anomaly models."""

from __future__ import annotations

from abc import abstractmethod

import torch
from mmengine.dist import collect_results, get_world_size
from mmengine.model import BaseModel

from adtool.structures import AnomalyDataSample


class BaseAnomalyModel(BaseModel):
    """An anomaly model following mmengine's ``forward(inputs, data_samples, mode)``.

    Subclasses implement :meth:`anomaly_outputs` (per-image score and per-pixel map at
    the input resolution) and, when trained by gradient, :meth:`loss`.
    """

    def forward(
        self,
        inputs: torch.Tensor,
        data_samples: list[AnomalyDataSample] | None = None,
        mode: str = "tensor",
    ):
        if mode == "loss":
            return self.loss(inputs, data_samples)
        if mode == "predict":
            return self.predict(inputs, data_samples)
        if mode == "tensor":
            return self.anomaly_outputs(inputs)
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")

    @abstractmethod
    def anomaly_outputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) normalised images -> scores (B,) and anomaly maps (B, H, W)."""

    def loss(self, inputs: torch.Tensor, data_samples: list[AnomalyDataSample] | None):
        raise NotImplementedError(f"{type(self).__name__} is not trained by gradient")

    def predict(
        self, inputs: torch.Tensor, data_samples: list[AnomalyDataSample] | None
    ) -> list[AnomalyDataSample]:
        scores, maps = self.anomaly_outputs(inputs)
        if data_samples is None:
            data_samples = [AnomalyDataSample() for _ in range(len(scores))]
        for sample, score, amap in zip(data_samples, scores, maps):
            sample.pred_score = score.detach().cpu()
            sample.anomaly_map = amap.detach().cpu()
        return data_samples


class MemoryBankModel(BaseAnomalyModel):
    """A model fitted in one pass over the training set (``FitLoop``), no optimiser.

    :meth:`fit_step` embeds one batch and keeps the result; :meth:`fit` gathers what
    every rank collected and calls :meth:`fit_embeddings` once.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._collected: list[torch.Tensor] = []

    @abstractmethod
    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """Embeddings of one normalised batch, in the form :meth:`fit_embeddings` takes."""

    @abstractmethod
    def fit_embeddings(self, embeddings: torch.Tensor) -> None:
        """Fit the model's statistics or memory bank from all training embeddings."""

    @torch.no_grad()
    def fit_step(self, data_batch: dict) -> None:
        data = self.data_preprocessor(data_batch, False)
        self._collected.append(self.embed(data["inputs"]).cpu())

    def fit(self) -> None:
        if not self._collected:
            raise RuntimeError(f"{type(self).__name__}.fit() called before any fit_step")
        embeddings = torch.cat(self._collected)
        self._collected = []
        if get_world_size() > 1:
            parts = collect_results([embeddings], get_world_size(), device="cpu")
            embeddings = torch.cat(parts)
        self.fit_embeddings(embeddings)
