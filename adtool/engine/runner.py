"""adtool's runner: mmengine's, plus fit-only training without a real optimiser."""

from __future__ import annotations

import logging

import torch
from mmengine.device import get_device
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner

from adtool.engine.dist import ddp_wrapper_cfg
from adtool.registry import RUNNERS


class FitOnlyOptimWrapper(OptimWrapper):
    """Stands in for an optimiser where a model is fitted, never stepped.

    mmengine's runner and hooks expect an optim wrapper whenever training runs; this
    one holds a single placeholder parameter, reports no learning rate and refuses to
    step, so a config of a memory-bank model needs no optimiser at all.
    """

    def __init__(self) -> None:
        super().__init__(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.0))

    def update_params(self, *args, **kwargs) -> None:
        raise RuntimeError("this model is fitted by FitLoop and has no optimiser to step")

    def get_lr(self) -> dict:
        return {}

    def get_momentum(self) -> dict:
        return {}


def is_fit_loop(train_cfg) -> bool:
    """True when ``train_cfg`` selects :class:`FitLoop`."""
    if isinstance(train_cfg, dict):
        loop_type = train_cfg.get("type")
        return loop_type == "FitLoop" or getattr(loop_type, "__name__", None) == "FitLoop"
    return type(train_cfg).__name__ == "FitLoop"


class _DropInternalDeprecations(logging.Filter):
    """Hide notices that mmengine's own ``save_checkpoint`` triggers on every save.

    mmengine 0.10 builds a deprecated ``FileClient`` on every checkpoint save and warns
    about it, and warns when a config has no parameter scheduler; the user cannot act on
    either, so they only bury real warnings.
    """

    MESSAGES = (
        '"FileClient" will be deprecated',
        '"HardDiskBackend" is the alias',
        # Logged on every save of a config without param_scheduler (most papers have none).
        "`save_param_scheduler` is True but `self.param_schedulers` is None",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(m in message for m in self.MESSAGES)


@RUNNERS.register_module()
class AnomalyRunner(Runner):
    """mmengine's Runner; a ``FitLoop`` config may leave ``optim_wrapper`` unset."""

    def __init__(self, *args, train_cfg=None, optim_wrapper=None, **kwargs) -> None:
        if optim_wrapper is None and is_fit_loop(train_cfg):
            optim_wrapper = FitOnlyOptimWrapper()
        super().__init__(*args, train_cfg=train_cfg, optim_wrapper=optim_wrapper, **kwargs)
        self.logger.addFilter(_DropInternalDeprecations())

    def wrap_model(self, model_wrapper_cfg, model):
        """mmengine's wrapping, with :func:`adtool.engine.dist.ddp_wrapper_cfg` as default:
        no DDP for a model without trainable parameters, none of CUDA's device ids on CPU."""
        if self.distributed and model_wrapper_cfg is None:
            model_wrapper_cfg = ddp_wrapper_cfg(
                model, self.cfg.get("find_unused_parameters", False)
            )
            if model_wrapper_cfg is None:
                return model.to(get_device())
        return super().wrap_model(model_wrapper_cfg, model)

    def save_checkpoint(self, out_dir: str, filename: str, *args, **kwargs) -> None:
        if isinstance(self.optim_wrapper, FitOnlyOptimWrapper):
            # A fitted model has no optimiser or schedule state worth keeping.
            kwargs.update(save_optimizer=False, save_param_scheduler=False)
        super().save_checkpoint(out_dir, filename, *args, **kwargs)
