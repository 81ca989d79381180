"""Hooks: the model's lifecycle, rich progress bars, best-checkpoint saving."""

from __future__ import annotations

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook, Hook
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
