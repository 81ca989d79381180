"""adtool's runner: mmengine's, plus fit-only training and the model lifecycle hook."""

from __future__ import annotations

import difflib
import inspect
import logging

import torch
from mmengine.device import get_device
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner
from torch.utils.data import DataLoader

from adtool.engine.dist import ddp_wrapper_cfg
from adtool.engine.hooks import ModelLifecycleHook, TrainingCacheHook
from adtool.errors import ConfigError
from adtool.registry import LOOPS, MODELS, RUNNERS, check_keys, check_value_types

#: Keys mmengine's ``Runner.build_dataloader`` takes besides DataLoader's own arguments.
_MMENGINE_LOADER_KEYS = {"num_batch_per_epoch", "disable_subprocess_warning"}
_LOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")


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


def needs_optim_wrapper(train_cfg) -> bool:
    """False when the train loop ``train_cfg`` selects never steps an optimiser.

    A loop class says so with ``needs_optim_wrapper = False`` (:class:`FitLoop`); loops
    without the attribute (mmengine's) need one.
    """
    loop = train_cfg
    if isinstance(train_cfg, dict):
        loop = train_cfg.get("type")
        if isinstance(loop, str):
            loop = LOOPS.get(loop)
    return getattr(loop, "needs_optim_wrapper", True)


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
    """mmengine's Runner for every adtool run.

    * A train loop that never steps an optimiser (``FitLoop``) may leave
      ``optim_wrapper`` unset; a placeholder stands in and checkpoints skip its state.
    * :class:`ModelLifecycleHook` is always registered: the model's ``before_train`` /
      ``after_train`` run without any config naming the hook; so is
      :class:`TrainingCacheHook` (frozen-feature and decode caches, config
      ``feature_cache`` / ``decode_cache``).
    * ``optim_wrapper=dict(constructor='MultiOptimWrapperConstructor', g=dict(...),
      d=dict(...))`` builds an ``OptimWrapperDict`` for models with several optimisers
      (see :mod:`adtool.engine.optim`); mmengine saves and resumes each one's state.
    """

    def __init__(self, *args, train_cfg=None, optim_wrapper=None, **kwargs) -> None:
        if optim_wrapper is None and train_cfg is not None and not needs_optim_wrapper(train_cfg):
            optim_wrapper = FitOnlyOptimWrapper()
        for name in _LOADERS:  # all three now: the test loader is built only after training
            self.check_dataloader_cfg(name, kwargs.get(name))
        super().__init__(*args, train_cfg=train_cfg, optim_wrapper=optim_wrapper, **kwargs)
        self.logger.addFilter(_DropInternalDeprecations())

    def register_hooks(self, default_hooks=None, custom_hooks=None) -> None:
        """mmengine's hooks, plus :class:`ModelLifecycleHook` and :class:`TrainingCacheHook`
        unless the config adds them."""
        super().register_hooks(default_hooks, custom_hooks)
        for kind in (ModelLifecycleHook, TrainingCacheHook):
            if not any(isinstance(hook, kind) for hook in self.hooks):
                self.register_hook(kind())

    @staticmethod
    def check_dataloader_cfg(name: str, cfg) -> None:
        """Refuse a dataloader key neither DataLoader nor mmengine takes, or a wrong type.

        mmengine passes the remaining keys straight to ``DataLoader``, whose ``TypeError``
        (or a ``ValueError`` deep in its sampler for ``batch_size='four'``) names neither
        the config key nor the fix.

        Raises:
            ConfigError: naming ``<name>.<key>`` and the closest valid key or the type.
        """
        if not isinstance(cfg, dict):
            return
        valid = set(inspect.signature(DataLoader.__init__).parameters) - {"self"}
        valid |= _MMENGINE_LOADER_KEYS
        for key in cfg:
            if key not in valid:
                close = difflib.get_close_matches(key, sorted(valid), n=1)
                hint = f"did you mean '{close[0]}'?" if close else "see torch's DataLoader"
                raise ConfigError(f"{name} does not accept the key '{key}'; {hint}")
        plain = {k: v for k, v in cfg.items() if k not in ("dataset", "sampler", "collate_fn")}
        check_value_types(plain, DataLoader, name)

    def build_model(self, model):
        """mmengine's, after adtool's key and type checks (mmengine's own registry lookup
        raises a bare ``KeyError`` for an unknown ``model.type``)."""
        if isinstance(model, dict):
            check_keys(model, MODELS)
        return super().build_model(model)

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
