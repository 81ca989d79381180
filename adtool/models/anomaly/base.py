"""Base classes of anomaly models.

:class:`BaseAnomalyModel` is the contract between a method and the engine: the method
gives per-image scores and (optionally) per-pixel maps, and may hook into training
(``before_train``, ``after_train``, ``train_step``); the engine never asks which method
it runs. :class:`MemoryBankModel` adds the one-pass fit that ``FitLoop`` drives.
"""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from mmengine.dist import get_world_size, is_main_process
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper, OptimWrapperDict

from adtool.engine.dist import broadcast_buffers, gather_to_main
from adtool.engine.feature_cache import sample_keys
from adtool.errors import ConfigError
from adtool.models.components import Tiler, gaussian_blur
from adtool.models.postprocess import PostProcessor
from adtool.structures import AnomalyDataSample


def _lifecycle_noop(method):
    """Mark a default lifecycle method: the engine may skip it (and the work around it)."""
    method.lifecycle_noop = True
    return method


class BaseAnomalyModel(BaseModel):
    """An anomaly model following mmengine's ``forward(inputs, data_samples, mode)``.

    Subclasses implement :meth:`anomaly_outputs` (per-image score and per-pixel map at
    the input resolution, or no map for a method that only scores images) and, when
    trained by gradient, :meth:`loss`. Every model owns a :class:`PostProcessor`
    (``self.postprocessor``): thresholds and normalisation statistics saved with its
    weights.

    Lifecycle, driven by :class:`~adtool.engine.ModelLifecycleHook` so that no method
    needs a loop of its own:

    * :meth:`before_train` runs once before the first training step,
    * :meth:`after_train` once after the last one (before the test),
    * :meth:`train_step` is mmengine's; override it for several optimisers or phases
      (the config's ``optim_wrapper`` then builds an ``OptimWrapperDict``).

    Tiling (``model.data_preprocessor.tiling=dict(tile_size=..., stride=...)``): the
    model runs on overlapping tiles of each image (:class:`~adtool.models.components.Tiler`)
    instead of the whole image. Training (``loss``, ``fit_step``) sees the tiles as
    images, each with its own crop of the sample's per-pixel fields (``gt_mask``,
    ``img_clean``); ``predict`` stitches the tiles' maps back to the input size (mean in
    overlaps) and scores an image by its worst tile. A method whose own ``train_step``,
    ``predict`` or lifecycle hooks read whole images does not support it unless it says so
    (``supports_tiling = True``, and it calls :meth:`tile_inputs` where it reads a batch
    itself); building one with tiling is a ``ConfigError``.

    Frozen-feature cache: a method whose loss starts with a frozen network (a teacher, an
    extractor) splits it into :meth:`frozen_features` (what the frozen part computes from
    the batch) and :meth:`loss_from_features` (the rest); ``loss`` is then their
    composition. Without a random train transform the engine
    (:class:`~adtool.engine.hooks.TrainingCacheHook`) computes each training sample's
    frozen features once and reuses them in later epochs (``self.feature_cache``).

    Args:
        data_preprocessor: Config of the batch normaliser. Defaults to None.
        init_cfg: mmengine init config. Defaults to None.
    """

    #: Parts kept in eval mode while the model trains: frozen feature extractors, whose
    #: batch-norm statistics must never update (a part whose ``frozen`` is False trains).
    frozen_parts: tuple[str, ...] = ()

    #: None: tiling is supported when the method keeps the base ``train_step`` and
    #: ``predict`` and no-op lifecycle hooks; True / False: the method's own answer.
    supports_tiling: bool | None = None

    _inference_optimized: bool = True

    #: False for a method whose graph cannot be exported to ONNX (adtool.deploy); then
    #: ``export_blocker`` says why, in one clause (the export error quotes it).
    exportable: bool = True
    export_blocker: str | None = None

    def __init__(self, data_preprocessor: dict | None = None, init_cfg: dict | None = None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.postprocessor = PostProcessor()
        # A FrozenFeatureCache while the engine caches the frozen part's outputs, else None.
        self.feature_cache = None
        # The same for the fixed validation images, attached only while validating.
        self.eval_feature_cache = None
        if self.tiler is not None and not self._tiling_supported():
            raise ConfigError(
                f"{type(self).__name__} does not support tiling (its training reads whole "
                "images); remove model.data_preprocessor.tiling or resize the images instead"
            )

    def train(self, mode: bool = True) -> BaseAnomalyModel:
        super().train(mode)
        for name in self.frozen_parts:
            part = getattr(self, name)
            if getattr(part, "frozen", True):
                part.eval()
        # Training never takes the optimised test path, even through a frozen part.
        fast = not mode and self._inference_optimized
        for module in self.modules():
            if hasattr(module, "fast_inference"):
                module.fast_inference = fast
            # Rebuilt from the current weights at the next test: in-place updates that
            # bypass the version counter (SyncBuffersHook's all-reduce of batch-norm
            # statistics) would otherwise leave a stale folded copy.
            folded = getattr(module, "_folded", None)
            if folded is not None and hasattr(folded, "clear"):
                folded.clear()
        return self

    @property
    def inference_optimized(self) -> bool:
        """Test through the optimised path (adtool/models/fast_inference.py) in eval mode.

        Folded batch-norm and channels-last backbones, the pruned exact k-NN; False keeps
        the reference path. Parts opt in with a ``fast_inference`` attribute that
        :meth:`train` sets. Defaults to True.
        """
        return self._inference_optimized

    @inference_optimized.setter
    def inference_optimized(self, value: bool) -> None:
        self._inference_optimized = bool(value)
        self.train(self.training)

    def check_input_size(self, inputs: torch.Tensor) -> None:
        """One line when ``inputs`` is not the (H, W) ``self.input_size`` it was built for."""
        if tuple(inputs.shape[-2:]) != tuple(self.input_size):
            raise ConfigError(
                f"{type(self).__name__} was built for {self.input_size[0]}x{self.input_size[1]} "
                f"images but got {inputs.shape[-2]}x{inputs.shape[-1]}; set model.input_size "
                "to the pipeline's Resize size"
            )

    @contextlib.contextmanager
    def export_mode(self) -> Iterator[None]:
        """Context the ONNX exporter traces the model in; nothing changes by default.

        Override it to swap a step the exporter cannot trace (a faiss search, a NumPy
        call) for a torch one that gives the same results.
        """
        yield

    # ------------------------------------------------------------------ tiling

    @property
    def tiler(self) -> Tiler | None:
        """The data preprocessor's :class:`Tiler` (``tiling=...``), None without tiling."""
        return getattr(self.data_preprocessor, "tiler", None)

    @classmethod
    def _tiling_supported(cls) -> bool:
        if cls.supports_tiling is not None:
            return cls.supports_tiling
        hooks_noop = all(
            getattr(getattr(cls, name), "lifecycle_noop", False)
            for name in ("before_train", "after_train")
        )
        own_steps = cls.train_step is not BaseAnomalyModel.train_step or (
            cls.predict is not BaseAnomalyModel.predict
        )
        return hooks_noop and not own_steps

    def tile_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> the (B * T, C, th, tw) tiles the model sees (``inputs`` untiled)."""
        return inputs if self.tiler is None else self.tiler.tile(inputs)

    def tile_batch(
        self, inputs: torch.Tensor, data_samples: list[AnomalyDataSample] | None
    ) -> tuple[torch.Tensor, list[AnomalyDataSample] | None]:
        """Tiles of a training batch, each with its crop of the sample's per-pixel fields.

        A data field whose last two dimensions are the input's (H, W) is cropped like the
        image; other fields and the metainfo are copied, with ``img_shape`` the tile's and
        ``tile_index`` its place (row by row).
        """
        if self.tiler is None:
            return inputs, data_samples
        size = tuple(inputs.shape[-2:])
        tiles = self.tiler.tile(inputs)
        if not data_samples:
            return tiles, data_samples
        th, tw = self.tiler.tile_size
        tiled = []
        for sample in data_samples:
            for k, (top, left) in enumerate(self.tiler.boxes(size)):
                part = sample.clone()
                for name, value in sample.items():
                    if isinstance(value, torch.Tensor) and tuple(value.shape[-2:]) == size:
                        crop = value[..., top : top + th, left : left + tw].clone()
                        part.set_field(crop, name, dtype=torch.Tensor)
                part.set_metainfo({"img_shape": (th, tw), "tile_index": k})
                tiled.append(part)
        return tiles, tiled

    def outputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`anomaly_outputs` of the whole images, or of their tiles stitched back.

        Tiles go through the model ``len(inputs)`` at a time (the configured batch), so
        tiling a batch does not multiply the memory a forward pass needs.
        """
        if self.tiler is None:
            return self.anomaly_outputs(inputs)
        size = tuple(inputs.shape[-2:])
        chunks = self.tiler.tile(inputs).split(len(inputs))
        parts = [self.anomaly_outputs(chunk) for chunk in chunks]
        scores = self.tiler.tile_scores(torch.cat([p[0] for p in parts]), size)
        if parts[0][1] is None:
            return scores, None
        return scores, self.tiler.untile(torch.cat([p[1] for p in parts]), size)

    def forward(
        self,
        inputs: torch.Tensor,
        data_samples: list[AnomalyDataSample] | None = None,
        mode: str = "tensor",
    ):
        if mode == "loss":
            inputs, data_samples = self.tile_batch(inputs, data_samples)
            keys = None if self.feature_cache is None else sample_keys(data_samples)
            if keys is None:
                return self.loss(inputs, data_samples)
            features = self.feature_cache.features(keys, inputs, self.frozen_features)
            return self.loss_from_features(features, inputs, data_samples)
        if mode == "predict":
            return self.predict(inputs, data_samples)
        if mode == "tensor":
            return self.outputs(inputs)
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")

    @abstractmethod
    def anomaly_outputs(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, 3, H, W) normalised images -> scores (B,) and maps (B, H, W) or None.

        None maps mark a method that scores whole images only; its results then have
        ``pixel: null`` and no overlays.
        """

    def loss(
        self, inputs: torch.Tensor, data_samples: list[AnomalyDataSample] | None = None
    ) -> dict:
        """The training losses of a (tiled) batch; by default from :meth:`frozen_features`."""
        if not self.splits_frozen_features():
            raise NotImplementedError(f"{type(self).__name__} is not trained by gradient")
        return self.loss_from_features(self.frozen_features(inputs), inputs, data_samples)

    # ------------------------------------------------------------------ frozen features

    def frozen_features(self, inputs: torch.Tensor) -> torch.Tensor | Sequence[torch.Tensor]:
        """What the frozen part computes from a normalised (tiled) batch, without gradient.

        A tensor or a list/tuple of tensors, each with the batch first, whose rows depend on
        their own image only (the frozen part is in eval mode). Implemented by methods that
        also implement :meth:`loss_from_features`.
        """
        raise NotImplementedError(f"{type(self).__name__} does not split its loss")

    def loss_from_features(
        self,
        features: torch.Tensor | Sequence[torch.Tensor],
        inputs: torch.Tensor,
        data_samples: list[AnomalyDataSample] | None,
    ) -> dict:
        """The training losses given :meth:`frozen_features` of ``inputs`` (maybe cached)."""
        raise NotImplementedError(f"{type(self).__name__} does not split its loss")

    @classmethod
    def _implements(cls, *names: str) -> bool:
        """True when the method overrides every one of these base methods."""
        return all(getattr(cls, n) is not getattr(BaseAnomalyModel, n) for n in names)

    @classmethod
    def splits_frozen_features(cls) -> bool:
        """True when the method implements :meth:`frozen_features` and its loss tail."""
        return cls._implements("frozen_features", "loss_from_features")

    def outputs_from_features(
        self, features: torch.Tensor | Sequence[torch.Tensor], inputs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`anomaly_outputs` given :meth:`frozen_features` of ``inputs`` (maybe cached).

        Implemented by methods whose test path starts with the same frozen part as their
        loss; the engine then caches the frozen part's outputs for the fixed validation
        images too (``self.eval_feature_cache``, see :meth:`splits_eval_features`).
        """
        raise NotImplementedError(f"{type(self).__name__} does not split its test path")

    @classmethod
    def splits_eval_features(cls) -> bool:
        """True when :meth:`anomaly_outputs` is :meth:`outputs_from_features` of the frozen part."""
        return cls._implements("frozen_features", "outputs_from_features")

    def feature_cache_refusal(self) -> str | None:
        """Why the frozen features of this model may not be cached, None when they may.

        Checked: the split (:meth:`splits_frozen_features`), the loss going through it (a
        method with its own ``train_step`` that does not call ``forward(mode='loss')``
        says so by overriding this), and every part of ``frozen_parts`` being frozen.
        """
        name = type(self).__name__
        if not self.splits_frozen_features():
            return f"{name} does not implement frozen_features / loss_from_features"
        for part in self.frozen_parts:
            if getattr(getattr(self, part), "frozen", True) is False:
                return f"{name}'s {part} trains (model.{part}.frozen=False)"
        return None

    #: Set False by :class:`~adtool.engine.AnomalyValLoop` while validating when only
    #: image metrics are monitored: ``predict`` then attaches scores only (no map copy to
    #: the CPU, nothing for the metric to keep) and scores through :meth:`scores_without_maps`.
    predict_maps: bool = True

    def scores_without_maps(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B,) image scores, the same values as :meth:`outputs`' first element.

        The default runs :meth:`outputs`. A method whose score does not come from the
        full-resolution map may override it to skip the map; most scores here are the map's
        maximum, which needs it.
        """
        return self.outputs(inputs)[0]

    def predict(
        self, inputs: torch.Tensor, data_samples: list[AnomalyDataSample] | None
    ) -> list[AnomalyDataSample]:
        cache = self.eval_feature_cache
        keys = None if cache is None or self.tiler is not None else sample_keys(data_samples)
        if keys is not None:
            features = cache.features(keys, inputs, self.frozen_features)
            scores, maps = self.outputs_from_features(features, inputs)
            maps = maps if self.predict_maps else None
        elif self.predict_maps:
            scores, maps = self.outputs(inputs)
        else:
            scores, maps = self.scores_without_maps(inputs), None
        if data_samples is None:
            data_samples = [AnomalyDataSample() for _ in range(len(scores))]
        for i, (sample, score) in enumerate(zip(data_samples, scores)):
            sample.pred_score = score.detach().cpu()
            if maps is not None:
                sample.anomaly_map = maps[i].detach().cpu()
        return data_samples

    # ------------------------------------------------------------------ lifecycle

    @_lifecycle_noop
    def before_train(self, train_loader) -> None:
        """Called once before the first training step (or fit pass); no-op by default.

        For a pass over the data before training (e.g. CFA's centroid memory,
        EfficientAD's teacher channel statistics).

        Args:
            train_loader: The training dataloader.
        """

    @_lifecycle_noop
    def after_train(self, train_loader) -> None:
        """Called once after the last training step (or the fit); no-op by default.

        For a pass after training (e.g. EfficientAD's map quantiles).

        Args:
            train_loader: The training dataloader.
        """

    def train_step(
        self, data: dict | tuple | list, optim_wrapper: OptimWrapper | OptimWrapperDict
    ) -> dict[str, torch.Tensor]:
        """One optimisation step; mmengine's by default (one optimiser, ``loss`` mode).

        Override it for several optimisers or phases: ``optim_wrapper`` is then an
        ``OptimWrapperDict`` keyed by the names of the config's ``optim_wrapper`` dict
        (``optim_wrapper['generator']``), each used with its own ``optim_context`` and
        ``update_params``.
        """
        return super().train_step(data, optim_wrapper)

    # ------------------------------------------------------------------ shared tail

    @staticmethod
    def to_input_map(
        patch_map: torch.Tensor, size: Sequence[int], blur_sigma: float = 0.0
    ) -> torch.Tensor:
        """(B, h, w) or (B, 1, h, w) patch scores -> (B, H, W) map at the input size.

        Bilinear upsampling (as every method's reference code does), then a Gaussian
        blur of std ``blur_sigma`` pixels (kornia; 0 turns it off).
        """
        if patch_map.ndim == 3:
            patch_map = patch_map.unsqueeze(1)
        size = tuple(int(s) for s in size)
        if tuple(patch_map.shape[-2:]) != size:
            patch_map = F.interpolate(patch_map, size=size, mode="bilinear", align_corners=False)
        return gaussian_blur(patch_map, blur_sigma).squeeze(1)

    @staticmethod
    def image_score_from_map(maps: torch.Tensor) -> torch.Tensor:
        """(B, H, W) maps -> (B,) image scores: the worst pixel."""
        return maps.flatten(1).amax(1)


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
        inputs = data["inputs"]
        if self.tiler is not None:
            # Tiles in groups of the batch size; each image's tiles stay together, so the
            # embeddings still split per image (distributed fit).
            tiles = self.tiler.tile(inputs).split(len(inputs))
            embeddings = torch.cat([self.embed(chunk) for chunk in tiles])
        else:
            embeddings = self.embed(inputs)
        self._collected.append((paths, embeddings.cpu()))

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
