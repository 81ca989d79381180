"""Hooks: the model's lifecycle, training caches, rich progress bars, best-checkpoint saving."""

from __future__ import annotations

import logging
import math

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import IterBasedTrainLoop
from mmengine.runner.checkpoint import (
    CheckpointLoader,
    get_state_dict,
    weights_to_cpu,
)
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from adtool.engine.feature_cache import (
    DECODE_CACHE_DEFAULTS,
    FEATURE_CACHE_DEFAULTS,
    DecodeCache,
    FrozenFeatureCache,
    cache_options,
    cacheable_datasets,
    first_random_transform,
    pipeline_transforms,
)
from adtool.errors import ConfigError
from adtool.fileio import atomic_path
from adtool.registry import HOOKS


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class ModelLifecycleHook(Hook):
    """Calls the model's ``before_train(train_loader)`` and ``after_train(train_loader)``.

    :class:`~adtool.engine.AnomalyRunner` adds this hook to every run, so no config
    names it and no model needs a loop of its own. A model without these methods is
    left alone. ``before_train`` runs before the first step (or fit pass), after a
    resume too. ``after_train`` runs when the loop ends; what it changes in the model is
    written into the last checkpoint the run saved (on the main process), so the tested
    and the saved model agree. (A ``best_*`` checkpoint comes from an earlier epoch's
    weights and keeps its state as saved.)
    """

    # Before CheckpointHook (NORMAL), which may publish the last checkpoint in after_train.
    priority = "ABOVE_NORMAL"

    def before_train(self, runner) -> None:
        hook = getattr(_unwrap(runner.model), "before_train", None)
        if callable(hook) and not getattr(hook, "lifecycle_noop", False):
            hook(runner.train_dataloader)

    def after_train(self, runner) -> None:
        model = _unwrap(runner.model)
        hook = getattr(model, "after_train", None)
        # The base class's no-op is marked; skipping it spares a checkpoint rewrite.
        if not callable(hook) or getattr(hook, "lifecycle_noop", False):
            return
        hook(runner.train_dataloader)
        self._update_last_checkpoint(runner, model)

    @staticmethod
    def _update_last_checkpoint(runner, model) -> None:
        """Rewrite the weights of the last saved checkpoint with the model's current ones."""
        if not is_main_process():
            return
        for hook in runner.hooks:
            path = getattr(hook, "last_ckpt", None) if isinstance(hook, CheckpointHook) else None
            if path is None:
                continue
            checkpoint = CheckpointLoader.load_checkpoint(str(path), map_location="cpu")
            checkpoint["state_dict"] = weights_to_cpu(get_state_dict(model))
            with atomic_path(path) as tmp:
                torch.save(checkpoint, tmp)


@HOOKS.register_module()
class TrainingCacheHook(Hook):
    """Caches what repeats every epoch: the frozen part's features and the decoded images.

    :class:`~adtool.engine.AnomalyRunner` adds it to every run. Before training it reads
    the config's top-level ``feature_cache`` and ``decode_cache`` dicts
    (:data:`~adtool.engine.feature_cache.FEATURE_CACHE_DEFAULTS`, ``enabled='auto'``) and
    logs one line saying what is on and, if not, why:

    * frozen features (:class:`~adtool.engine.feature_cache.FrozenFeatureCache`): 'auto'
      turns it on when the model splits its loss (``frozen_features`` /
      ``loss_from_features``, see ``BaseAnomalyModel.feature_cache_refusal``), no
      transform of the train pipeline is random (``random = True``, or no such attribute)
      and training passes over the data more than once; ``True`` skips the last two
      checks (the frozen features then keep the first epoch's augmentation).
    * decoded images (:class:`~adtool.engine.feature_cache.DecodeCache`): the pipeline's
      deterministic head (loading, resizing, ...) runs once per sample. With loader
      workers that do not persist, the main process fills it before training, so every
      epoch's workers inherit it.

    When training validates at least twice, the validation images get both too: their
    decoded head, and the frozen part's outputs in ``model.eval_feature_cache`` (attached
    only between ``before_val_epoch`` and ``after_val_epoch``) for a model with
    ``outputs_from_features`` (``splits_eval_features``); one more log line says which.

    After training (after the model's own ``after_train``) all are dropped and the
    memory-mapped files deleted. Each process of a distributed run caches its own samples.
    """

    # After ModelLifecycleHook (ABOVE_NORMAL): its after_train may still read the loader.
    priority = "BELOW_NORMAL"

    def __init__(self) -> None:
        self._model = None
        self._eval_model = None
        self._eval_cache: FrozenFeatureCache | None = None
        self._decode: list[tuple[object, object]] = []  # (dataset, its own pipeline)

    def before_train(self, runner) -> None:
        cfg = runner.cfg
        features = cache_options("feature_cache", cfg.get("feature_cache"), FEATURE_CACHE_DEFAULTS)
        decode = cache_options("decode_cache", cfg.get("decode_cache"), DECODE_CACHE_DEFAULTS)
        loop = runner.train_loop
        loader = loop.dataloader
        dataset = loader.dataset
        passes = self._passes(loop)
        transforms = pipeline_transforms(dataset)
        random = "an unknown pipeline" if transforms is None else first_random_transform(transforms)
        notes = [
            self._start_feature_cache(runner, features, passes, random),
            self._start_decode_cache(loader, decode, passes),
        ]
        print_log("training caches: " + "; ".join(notes), logger="current", level=logging.INFO)
        val_loader = self._val_loader(runner)
        if val_loader is not None:
            notes = [
                self._start_eval_feature_cache(runner, features, val_loader),
                self._start_decode_cache(val_loader, decode, math.inf),
            ]
            print_log(
                "validation caches: " + "; ".join(notes), logger="current", level=logging.INFO
            )

    @staticmethod
    def _val_loader(runner):
        """The validation dataloader when training validates more than once, else None."""
        loop = runner.train_loop
        epochs = getattr(loop, "max_epochs", None)
        interval = getattr(loop, "val_interval", None)
        if runner.val_loop is None or not epochs or not interval or epochs < 2 * interval:
            return None
        return runner.val_loop.dataloader

    def _start_eval_feature_cache(self, runner, options: dict, loader) -> str:
        """The frozen part's outputs for the validation images, computed at the first
        validation and read back at the later ones (the images and the frozen part are fixed).
        """
        model = _unwrap(runner.model)
        if options["enabled"] is False:
            return "frozen features off (feature_cache.enabled=False)"
        if not getattr(model, "splits_eval_features", lambda: False)():
            return f"frozen features off ({type(model).__name__} does not split its test path)"
        refusal = model.feature_cache_refusal()
        if refusal is not None:
            return f"frozen features off ({refusal})"
        if model.tiler is not None:
            return "frozen features off (tiling)"
        transforms = pipeline_transforms(loader.dataset)
        random = "an unknown pipeline" if transforms is None else first_random_transform(transforms)
        if random is not None:
            return f"frozen features off (the validation pipeline's {random} is random)"
        spill = options["spill_dir"] if options["spill_dir"] is not None else runner.work_dir
        self._eval_model = model
        self._eval_cache = FrozenFeatureCache(
            int(options["max_memory_mb"] * 1024 * 1024), spill_dir=spill
        )
        return "frozen features on (the first validation computes, later ones read)"

    def before_val_epoch(self, runner) -> None:
        # Only inside validation: the test, or a model's own predict calls, never read it.
        if self._eval_model is not None:
            self._eval_model.eval_feature_cache = self._eval_cache

    def after_val_epoch(self, runner, metrics=None) -> None:
        if self._eval_model is not None:
            self._eval_model.eval_feature_cache = None

    @staticmethod
    def _passes(loop) -> float:
        """How many times training reads the data (inf when unknown)."""
        try:
            return loop.max_iters / max(len(loop.dataloader), 1)
        except (AttributeError, TypeError):
            return math.inf

    def _start_feature_cache(self, runner, options: dict, passes: float, random) -> str:
        model = _unwrap(runner.model)
        enabled = options["enabled"]
        if enabled is False:
            return "frozen features off (feature_cache.enabled=False)"
        refusal = getattr(model, "feature_cache_refusal", lambda: "not an anomaly model")()
        if refusal is not None:
            if enabled is True:
                raise ConfigError(f"feature_cache.enabled=True but {refusal}; set it to 'auto'")
            return f"frozen features off ({refusal})"
        if enabled == "auto" and random is not None:
            return f"frozen features off (the train pipeline's {random} is random)"
        if enabled == "auto" and passes <= 1:
            return "frozen features off (one pass over the data)"
        spill = options["spill_dir"] if options["spill_dir"] is not None else runner.work_dir
        model.feature_cache = FrozenFeatureCache(
            int(options["max_memory_mb"] * 1024 * 1024), spill_dir=spill
        )
        self._model = model
        return (
            f"frozen features on (first epoch computes, later ones read; "
            f"{options['max_memory_mb']} MB in memory, then memory-mapped under {spill})"
        )

    def _start_decode_cache(self, loader, options: dict, passes: float) -> str:
        if options["enabled"] is False:
            return "decoded images off (decode_cache.enabled=False)"
        if options["enabled"] == "auto" and passes <= 1:
            return "decoded images off (one pass over the data)"
        datasets = cacheable_datasets(loader.dataset)
        caches = []
        for ds in datasets:
            cache = DecodeCache(ds.pipeline, int(options["max_memory_mb"] * 1024 * 1024))
            if cache.head:
                self._decode.append((ds, ds.pipeline))
                ds.pipeline = cache
                caches.append((ds, cache))
        if not caches:
            return "decoded images off (the train pipeline has no deterministic head)"
        workers = getattr(loader, "num_workers", 0)
        if workers and not getattr(loader, "persistent_workers", False):
            for ds, cache in caches:
                for idx in range(len(ds)):
                    cache(ds.get_data_info(idx))
        head = ", ".join(type(t).__name__ for t in caches[0][1].head)
        return f"decoded images on ({head} once per sample, {options['max_memory_mb']} MB)"

    def after_train(self, runner) -> None:
        if self._model is not None:
            cache, self._model.feature_cache = self._model.feature_cache, None
            if cache is not None:
                runner.message_hub.update_info(
                    "feature_cache", dict(hits=cache.hits, misses=cache.misses)
                )
                cache.close()
            self._model = None
        if self._eval_model is not None:
            self._eval_model.eval_feature_cache = None
            runner.message_hub.update_info(
                "eval_feature_cache",
                dict(hits=self._eval_cache.hits, misses=self._eval_cache.misses),
            )
            self._eval_cache.close()
            self._eval_model = self._eval_cache = None
        for ds, pipeline in self._decode:
            ds.pipeline = pipeline
        self._decode = []


@HOOKS.register_module()
class RichProgressHook(Hook):
    """A rich progress bar per epoch of each phase (on the main process only).

    Args:
        transient: Remove each bar when its phase ends. Defaults to False.
    """

    priority = "VERY_LOW"

    def __init__(self, transient: bool = False) -> None:
        self.transient = transient
        self._progress: Progress | None = None
        self._task = None
        self._iter_total: int | None = None

    def _start(self, runner, phase: str, total: int, completed: int = 0) -> None:
        if not is_main_process():
            return
        self._stop()
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=self.transient,
        )
        self._progress.start()
        self._task = self._progress.add_task(phase, total=total, completed=completed)

    def _advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def _train_bar(self, runner) -> None:
        if self._iter_total is not None:  # iteration loop: one bar over every step
            self._start(runner, "train", self._iter_total, completed=runner.iter)
            return
        loop = runner.train_loop
        # A loop may name its pass (FitLoop: "fit"); epoch loops count epochs.
        name = getattr(loop, "phase", None) or f"train epoch {runner.epoch + 1}"
        self._start(runner, name, len(loop.dataloader))

    def before_train_epoch(self, runner) -> None:
        # mmengine's IterBasedTrainLoop calls this once for the whole run: its bar counts
        # the configured steps, not one pass over the data.
        loop = runner.train_loop
        self._iter_total = loop.max_iters if isinstance(loop, IterBasedTrainLoop) else None
        self._train_bar(runner)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._advance()

    def after_train_epoch(self, runner) -> None:
        self._stop()
        self._iter_total = None

    def before_val_epoch(self, runner) -> None:
        self._start(runner, "validate", len(runner.val_loop.dataloader))

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._advance()

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._stop()
        if self._iter_total is not None and runner.iter < self._iter_total:
            self._train_bar(runner)  # validation inside an iteration loop: training goes on

    def before_test_epoch(self, runner) -> None:
        self._start(runner, "test", len(runner.test_loop.dataloader))

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._advance()

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._stop()


@HOOKS.register_module()
class AnomalyCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` that tolerates an undefined best-metric value.

    ``save_best='image_AUROC'`` keeps the checkpoint of the best validation epoch. When a
    validation split holds one class only, :class:`~adtool.evaluation.AnomalyMetric`
    leaves ``image_AUROC`` out (it is undefined); mmengine's hook would then stop training
    with a ``KeyError``. This hook warns once and keeps training without a best checkpoint.
    """

    def _save_best_checkpoint(self, runner, metrics) -> None:
        if self.save_best is not None:
            wanted = self.save_best if isinstance(self.save_best, list) else [self.save_best]
            missing = [k for k in wanted if k != "auto" and k not in metrics]
            if missing:
                if not getattr(self, "_warned_missing", False):
                    runner.logger.warning(
                        f"validation gave no {missing} (one-class split?); the best "
                        "checkpoint is not tracked"
                    )
                    self._warned_missing = True
                return
        super()._save_best_checkpoint(runner, metrics)
