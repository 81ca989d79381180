"""Loops for models that are fitted rather than trained."""

from __future__ import annotations

import torch
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop

from adtool.registry import LOOPS


@LOOPS.register_module()
class FitLoop(BaseLoop):
    """One pass over the training set, then ``model.fit()``; no optimiser step.

    The model must provide ``fit_step(data_batch)`` and ``fit()`` (see
    :class:`adtool.models.anomaly.MemoryBankModel`). The usual train hooks run, so the
    checkpoint hook saves the fitted model after the single epoch.
    """

    #: No optimiser steps: the runner may supply a placeholder optim wrapper.
    needs_optim_wrapper = False
    #: Label of the pass in progress bars.
    phase = "fit"

    def __init__(self, runner, dataloader) -> None:
        super().__init__(runner, dataloader)
        self._epoch = 0
        self._iter = 0

    @property
    def max_epochs(self) -> int:
        return 1

    @property
    def max_iters(self) -> int:
        return len(self.dataloader)

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def iter(self) -> int:
        return self._iter

    def run(self):
        runner = self.runner
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        for name in ("fit_step", "fit"):
            if not hasattr(model, name):
                raise TypeError(
                    f"FitLoop needs a model with {name}(); {type(model).__name__} has none. "
                    "Use train_cfg=dict(type='EpochBasedTrainLoop', ...) for trained models."
                )
        runner.call_hook("before_train")
        runner.call_hook("before_train_epoch")
        model.eval()
        for idx, data_batch in enumerate(self.dataloader):
            runner.call_hook("before_train_iter", batch_idx=idx, data_batch=data_batch)
            with torch.no_grad():
                model.fit_step(data_batch)
            runner.call_hook("after_train_iter", batch_idx=idx, data_batch=data_batch, outputs={})
            self._iter += 1
        model.fit()
        # Hooks see the epoch being finished (the checkpoint is named epoch_1.pth);
        # mmengine's own loops count it only afterwards too.
        runner.call_hook("after_train_epoch")
        self._epoch += 1
        runner.call_hook("after_train")
        return runner.model
