"""Base classes of anomaly models."""

from __future__ import annotations

from abc import abstractmethod

import torch
from mmengine.dist import get_world_size, is_main_process
from mmengine.model import BaseModel

from adtool.engine.dist import broadcast_buffers, gather_to_main
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
        # Per batch: its samples' image paths and its embeddings.
        self._collected: list[tuple[list, torch.Tensor]] = []

    @abstractmethod
    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """Embeddings of one normalised batch, in the form :meth:`fit_embeddings` takes."""

    @abstractmethod
    def fit_embeddings(self, embeddings: torch.Tensor) -> None:
        """Fit the model's statistics or memory bank from all training embeddings."""

    @torch.no_grad()
    def fit_step(self, data_batch: dict) -> None:
        data = self.data_preprocessor(data_batch, False)
        samples = data.get("data_samples") or [None] * len(data["inputs"])
        paths = [None if s is None else s.metainfo.get("img_path") for s in samples]
        self._collected.append((paths, self.embed(data["inputs"]).cpu()))

    def fit(self) -> None:
        """Fit on every rank's embeddings: the main process fits, the others copy its buffers.

        Each rank saw a strided share of the training set (mmengine's ``DefaultSampler``),
        padded so that ranks hold as many samples. The embeddings are split per sample,
        gathered on the main process in the one-process order with the padding dropped,
        fitted there once, and the fitted buffers are broadcast, so every rank tests with
        the same bank and a checkpoint equals a one-process run's.
        """
        if not self._collected:
            raise RuntimeError(f"{type(self).__name__}.fit() called before any fit_step")
        batches, self._collected = self._collected, []
        if get_world_size() == 1:
            self.fit_embeddings(torch.cat([emb for _, emb in batches]))
            return
        keys, samples = [], []
        for paths, emb in batches:
            n = len(paths)
            if emb.shape[0] % n:
                raise RuntimeError(
                    f"{type(self).__name__}.embed gave {emb.shape[0]} rows for {n} images; "
                    "a distributed fit needs the same number of rows per image"
                )
            keys += paths
            samples += list(emb.split(emb.shape[0] // n))
        gathered = gather_to_main(samples, keys=keys)
        if is_main_process():
            self.fit_embeddings(torch.cat(gathered))
        broadcast_buffers(self)
