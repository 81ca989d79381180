"""adtool's registries: children of mmengine's, scope ``adtool``.

Every registry builds through :func:`build_checked`, which refuses a config key that the
component's ``__init__`` does not accept and names the closest valid key, instead of
letting a typo pass silently or surface as a bare ``TypeError``.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any

from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import EVALUATOR as MMENGINE_EVALUATOR
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISBACKENDS as MMENGINE_VISBACKENDS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import DefaultScope, Registry, build_from_cfg, build_model_from_cfg

from adtool.errors import ConfigError

_META_KEYS = {"type", "_scope_"}


def accepted_keys(obj_cls: Any) -> set[str] | None:
    """Keyword names ``obj_cls(...)`` accepts, or None when it takes ``**kwargs``."""
    target = obj_cls.__init__ if inspect.isclass(obj_cls) else obj_cls
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return None
    names = set()
    for p in params:
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            names.add(p.name)
    names.discard("self")
    return names


def check_keys(cfg: dict, registry: Registry) -> None:
    """Raise :class:`ConfigError` if ``cfg`` has a key its ``type`` does not accept."""
    obj_type = cfg.get("type")
    if isinstance(obj_type, str):
        scope = cfg.get("_scope_")
        with registry.switch_scope_and_registry(scope) as reg:
            obj_cls = reg.get(obj_type)
        if obj_cls is None:
            if registry.get(obj_type) is not None:
                current = DefaultScope.get_current_instance()
                raise ConfigError(
                    f"type '{obj_type}' is registered in scope 'adtool' but the default scope "
                    f"is '{current.scope_name if current else None}'; set "
                    "default_scope = 'adtool' in the config"
                )
            known = set(registry.module_dict)
            if registry.parent is not None:
                known |= set(registry.parent.module_dict)
            close = difflib.get_close_matches(obj_type, sorted(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"type '{obj_type}' is not registered in {registry.name}{hint}")
    else:
        obj_cls = obj_type
    if obj_cls is None:
        return
    valid = accepted_keys(obj_cls)
    if valid is None:
        return
    name = getattr(obj_cls, "__name__", str(obj_cls))
    for key in cfg:
        if key in _META_KEYS or key in valid:
            continue
        close = difflib.get_close_matches(key, sorted(valid), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(sorted(valid))}"
        raise ConfigError(f"{name} does not accept the config key '{key}'; {hint}")


def build_checked(cfg: Any, registry: Registry, default_args: dict | None = None) -> Any:
    """mmengine's build, after refusing unknown config keys."""
    if isinstance(cfg, dict):
        check_keys(cfg, registry)
    return build_from_cfg(cfg, registry, default_args)


def build_model_checked(cfg: Any, registry: Registry, default_args: dict | None = None) -> Any:
    """mmengine's model build (lists become Sequential), after refusing unknown keys."""
    if isinstance(cfg, dict):
        check_keys(cfg, registry)
    return build_model_from_cfg(cfg, registry, default_args)


def _registry(name: str, parent: Registry, location: str, model: bool = False) -> Registry:
    return Registry(
        name,
        parent=parent,
        scope="adtool",
        locations=[location],
        build_func=build_model_checked if model else build_checked,
    )


MODELS = _registry("model", MMENGINE_MODELS, "adtool.models", model=True)
DATASETS = _registry("dataset", MMENGINE_DATASETS, "adtool.datasets")
TRANSFORMS = _registry("transform", MMENGINE_TRANSFORMS, "adtool.datasets.transforms")
DATA_SAMPLERS = _registry("data sampler", MMENGINE_DATA_SAMPLERS, "adtool.datasets")
METRICS = _registry("metric", MMENGINE_METRICS, "adtool.evaluation")
EVALUATOR = _registry("evaluator", MMENGINE_EVALUATOR, "adtool.evaluation")
HOOKS = _registry("hook", MMENGINE_HOOKS, "adtool.engine")
LOOPS = _registry("loop", MMENGINE_LOOPS, "adtool.engine")
OPTIMIZERS = _registry("optimizer", MMENGINE_OPTIMIZERS, "adtool.engine")
OPTIM_WRAPPERS = _registry("optim wrapper", MMENGINE_OPTIM_WRAPPERS, "adtool.engine")
# Present so that mmengine finds an 'adtool' scope when it builds the default constructor.
OPTIM_WRAPPER_CONSTRUCTORS = _registry(
    "optimizer wrapper constructor", MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS, "adtool.engine"
)
PARAM_SCHEDULERS = _registry("parameter scheduler", MMENGINE_PARAM_SCHEDULERS, "adtool.engine")
RUNNERS = _registry("runner", MMENGINE_RUNNERS, "adtool.engine")
VISUALIZERS = _registry("visualizer", MMENGINE_VISUALIZERS, "adtool.visualization")
VISBACKENDS = _registry("vis backend", MMENGINE_VISBACKENDS, "adtool.visualization")


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every adtool module that registers something; optionally set the scope.

    Args:
        init_default_scope: Make ``'adtool'`` the current default scope, so configs
            that omit ``default_scope`` still build from these registries.
            Defaults to True.
    """
    import adtool.datasets  # noqa: F401
    import adtool.engine  # noqa: F401
    import adtool.evaluation  # noqa: F401
    import adtool.models  # noqa: F401
    import adtool.visualization  # noqa: F401

    if init_default_scope:
        if DefaultScope.get_current_instance() is None or not DefaultScope.check_instance_created(
            "adtool"
        ):
            DefaultScope.get_instance("adtool", scope_name="adtool")
