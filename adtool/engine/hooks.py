"""Hooks: rich progress bars for every phase, best-checkpoint saving for anomaly metrics."""

from __future__ import annotations

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook, Hook
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from adtool.registry import HOOKS


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

    def _start(self, runner, phase: str, total: int) -> None:
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
        self._task = self._progress.add_task(phase, total=total)

    def _advance(self) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def _stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def before_train_epoch(self, runner) -> None:
        loop = runner.train_loop
        name = "fit" if type(loop).__name__ == "FitLoop" else f"train epoch {runner.epoch + 1}"
        self._start(runner, name, len(loop.dataloader))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._advance()

    def after_train_epoch(self, runner) -> None:
        self._stop()

    def before_val_epoch(self, runner) -> None:
        self._start(runner, "validate", len(runner.val_loop.dataloader))

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._advance()

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._stop()

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
