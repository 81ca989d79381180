"""Several optimisers for one model: an ``OptimWrapperDict`` built from a config.

mmengine builds one ``OptimWrapper`` per model with its default constructor and leaves
several optimisers to a custom constructor. This is that constructor: each key of the
config's ``optim_wrapper`` names a submodule of the model (``model.generator``) and
holds that submodule's optim-wrapper config::

    optim_wrapper = dict(
        constructor='MultiOptimWrapperConstructor',
        generator=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=2e-4)),
        discriminator=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=2e-4)),
    )

The model's ``train_step(data, optim_wrapper)`` then receives an ``OptimWrapperDict``
and steps ``optim_wrapper['generator']`` and ``optim_wrapper['discriminator']`` as its
method requires. Phases of one network (DSR) use the same mechanism with the phase's
submodule as the key.
"""

from __future__ import annotations

from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapperDict
from torch import nn

from adtool.errors import ConfigError
from adtool.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class MultiOptimWrapperConstructor:
    """Build an ``OptimWrapperDict``: one optim wrapper per named submodule.

    Args:
        optim_wrapper_cfg: Submodule name (a dotted path below the model) -> that
            submodule's optim-wrapper config (``type``, ``optimizer``, ...; a
            ``paramwise_cfg`` inside it applies to that submodule only).
        paramwise_cfg: Applied to every submodule without its own. Defaults to None.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None) -> None:
        if not isinstance(optim_wrapper_cfg, dict) or not optim_wrapper_cfg:
            raise ConfigError(
                "MultiOptimWrapperConstructor needs optim_wrapper entries name=dict(type="
                "'OptimWrapper', optimizer=...), one per trained submodule"
            )
        self.optim_wrapper_cfg = optim_wrapper_cfg
        self.paramwise_cfg = paramwise_cfg

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        model = getattr(model, "module", model)
        wrappers = {}
        for name, cfg in self.optim_wrapper_cfg.items():
            if not isinstance(cfg, dict):
                raise ConfigError(
                    f"optim_wrapper.{name} must be an optim-wrapper config dict, got {cfg!r}"
                )
            try:
                module = model.get_submodule(name)
            except AttributeError:
                children = ", ".join(n for n, _ in model.named_children())
                raise ConfigError(
                    f"optim_wrapper.{name} names no submodule of {type(model).__name__}; "
                    f"use one of: {children}"
                ) from None
            cfg = dict(cfg)
            paramwise = cfg.pop("paramwise_cfg", self.paramwise_cfg)
            wrappers[name] = DefaultOptimWrapperConstructor(cfg, paramwise)(module)
        return OptimWrapperDict(**wrappers)
