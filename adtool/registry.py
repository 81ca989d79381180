"""adtool's registries: children of mmengine's, scope ``adtool``.

Every registry builds through :func:`build_checked`, which refuses a config key that the
component's ``__init__`` does not accept and names the closest valid key, and a value whose
type contradicts the ``__init__`` annotation (``coreset_ratio='abc'``, ``num_neighbors=3.5``)
naming key, value and expected type, instead of letting a typo pass silently or surface as
a bare ``TypeError`` deep inside the run.
"""

from __future__ import annotations

import collections.abc
import difflib
import inspect
import types
import typing
from typing import Any, Literal, Union

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


#: Values a config file or ``--cfg-options`` can hold; anything else is a built object
#: passed from Python, whose type the annotations cannot judge reliably.
_CONFIG_VALUE_TYPES = (type(None), bool, int, float, str, list, tuple, dict)
_SEQUENCE_ORIGINS = (list, tuple, collections.abc.Sequence, collections.abc.Iterable)
_MAPPING_ORIGINS = (dict, collections.abc.Mapping)


def type_hints(obj: Any) -> dict[str, Any]:
    """The evaluated annotations of ``obj.__init__`` (or of a function).

    Modules use ``from __future__ import annotations``, so annotations are strings;
    ``typing.get_type_hints`` evaluates them. An annotation that cannot be evaluated (a
    name imported only for type checkers) is left out rather than failing the build.
    """
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        return typing.get_type_hints(target)
    except Exception:  # one unresolvable name: evaluate the others one at a time
        hints = {}
        namespace = getattr(target, "__globals__", {})
        for name, annotation in getattr(target, "__annotations__", {}).items():
            try:
                hints[name] = typing.get_type_hints(
                    types.SimpleNamespace(__annotations__={name: annotation}), namespace
                )[name]
            except Exception:
                continue
        return hints


def value_matches(value: Any, hint: Any) -> bool | None:
    """Whether a config ``value`` fits the annotation ``hint``; None when it cannot tell.

    Simple types only: int (not bool), float (int accepted), bool, str, None, unions,
    ``Literal``, sequences (list or tuple; a str is not one) and their element types,
    mappings. Anything else (a class, ``Callable``, a type variable) is not judged.
    """
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Union or origin is types.UnionType:
        results = [value_matches(value, a) for a in args]
        if any(r is True for r in results):
            return True
        return None if any(r is None for r in results) else False
    if origin is Literal:
        return value in args
    if hint is None or hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint in _MAPPING_ORIGINS or origin in _MAPPING_ORIGINS:
        return isinstance(value, dict)
    if hint in _SEQUENCE_ORIGINS or origin in _SEQUENCE_ORIGINS:
        if not isinstance(value, (list, tuple)):
            return False
        if not args:
            return True
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(args) != len(value):
                return False
            pairs = zip(value, args)
        else:
            pairs = ((v, args[0]) for v in value)
        results = [value_matches(v, a) for v, a in pairs]
        return False if any(r is False for r in results) else True
    return None


def describe_type(hint: Any) -> str:
    """A reader's name for an annotation: ``float``, ``int or None``, ``sequence of int``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is None or hint is type(None):
        return "None"
    if origin is Union or origin is types.UnionType:
        return " or ".join(describe_type(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in _SEQUENCE_ORIGINS:
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            return f"a sequence of {len(args)} ({', '.join(describe_type(a) for a in args)})"
        return f"a sequence of {describe_type(args[0])}" if args else "a sequence"
    if origin in _MAPPING_ORIGINS:
        return "a dict"
    return getattr(hint, "__name__", str(hint))


def check_value_types(cfg: dict, target: Any, name: str) -> None:
    """Raise :class:`ConfigError` for the first ``cfg`` value its annotation refuses.

    Args:
        cfg: Keyword arguments from a config (``type`` and ``_scope_`` are skipped).
        target: The class (its ``__init__`` is read) or function they are passed to.
        name: The component's name for the message.
    """
    hints = type_hints(target)
    if not hints:
        return
    try:
        params = inspect.signature(target.__init__ if inspect.isclass(target) else target)
        defaults = {k: p.default for k, p in params.parameters.items()}
    except (TypeError, ValueError):
        defaults = {}
    for key, value in cfg.items():
        if key in _META_KEYS or key not in hints or not isinstance(value, _CONFIG_VALUE_TYPES):
            continue
        if value is None and defaults.get(key, inspect.Parameter.empty) is None:
            continue  # ``x: int = None``: None is the documented default
        if value_matches(value, hints[key]) is False:
            raise ConfigError(
                f"{name}: config key '{key}' = {value!r} is a {type(value).__name__}; "
                f"expected {describe_type(hints[key])}"
            )


def check_keys(cfg: dict, registry: Registry) -> None:
    """Raise :class:`ConfigError` if ``cfg`` has a key its ``type`` does not accept, or a
    value of a type its annotation refuses."""
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
    name = getattr(obj_cls, "__name__", str(obj_cls))
    valid = accepted_keys(obj_cls)
    if valid is not None:
        for key in cfg:
            if key in _META_KEYS or key in valid:
                continue
            close = difflib.get_close_matches(key, sorted(valid), n=1)
            listed = ", ".join(sorted(valid))
            hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {listed}"
            raise ConfigError(f"{name} does not accept the config key '{key}'; {hint}")
    check_value_types(cfg, obj_cls, name)


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
