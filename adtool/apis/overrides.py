"""Refuse ``--cfg-options`` keys that would silently do nothing.

mmengine's ``Config.merge_from_dict`` adds any key it is given, so a typo such as
``modle.head.coreset_ratio=0.1`` becomes a new top-level entry that nothing reads and the
run goes on with the config's value. :func:`check_override_keys` runs before the merge
and names the closest valid key instead, like :func:`adtool.registry.check_keys` does for
component keys at build time:

* the first key must be a top-level key of the merged config, a keyword of mmengine's
  ``Runner`` (``work_dir``, ``load_from``, ``randomness``, ...) or one of the top-level
  keys adtool reads itself (:data:`ADTOOL_KEYS`);
* a deeper key that is missing from an existing dict is checked against that dict's
  ``type``: it passes when the component's ``__init__`` accepts it (or takes
  ``**kwargs``), so ``print-config``, which builds nothing, refuses the typos that a run
  would refuse at build time. A dict without a ``type`` (``hf_config``,
  ``default_hooks``, ...) may gain keys: nothing tells which ones are valid.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping

from mmengine.runner import Runner

from adtool.errors import ConfigError

# Top-level keys adtool reads (apis/, tools/) that a config may leave unset.
ADTOOL_KEYS = frozenset(
    {
        "task",
        "runner_type",
        "test_from",
        "infer_pipeline",
        "class_names",
        "multi_class",
        "html_report",
        "feature_cache",  # read by adtool.engine.TrainingCacheHook
        "decode_cache",
    }
)


def runner_keys() -> frozenset[str]:
    """The keyword arguments of mmengine's ``Runner`` (what ``Runner.from_cfg`` reads)."""
    params = inspect.signature(Runner.__init__).parameters
    return frozenset(params) - {"self", "cfg"}


def _close(key: str, choices, fallback: str) -> str:
    close = difflib.get_close_matches(key, sorted(choices), n=1)
    return f"did you mean '{close[0]}'?" if close else fallback


def _registered_class(type_name: str):
    """The class registered as ``type_name`` in any adtool registry, or None."""
    from adtool import registry as reg

    reg.register_all_modules()
    for value in vars(reg).values():
        if isinstance(value, reg.Registry) and value.scope == "adtool":
            found = value.get(type_name)
            if found is not None:
                return found
    return None


def _type_accepts(parent: Mapping, key: str) -> tuple[bool, set[str]]:
    """(accepted, the component's keyword names) for ``key`` under a dict with ``type``."""
    from adtool.registry import accepted_keys

    obj_type = parent.get("type")
    obj_cls = _registered_class(obj_type) if isinstance(obj_type, str) else obj_type
    if obj_cls is None:
        # Unknown type: building it will say so with its own did-you-mean.
        return True, set()
    valid = accepted_keys(obj_cls)
    return valid is None or key in valid, valid or set()


_MISSING = object()


def _child(node, part: str):
    """``node[part]`` for a dict key or a list index, or a sentinel when absent."""
    if isinstance(node, Mapping):
        return node[part] if part in node else _MISSING
    if isinstance(node, list | tuple) and part.lstrip("-").isdigit():
        index = int(part)
        return node[index] if -len(node) <= index < len(node) else _MISSING
    return _MISSING


def check_override_keys(cfg: Mapping, options: Mapping | None) -> None:
    """Raise :class:`ConfigError` for an override key that the config does not have.

    Args:
        cfg: The merged config (its ``_base_`` files applied), before ``options``.
        options: ``--cfg-options`` as a dict of dotted keys (``{'model.head.k': 3}``).

    Raises:
        ConfigError: naming the key and the closest valid one, when the first key is not
            a key of ``cfg``, of mmengine's Runner or of :data:`ADTOOL_KEYS`, or when a
            deeper key is missing from a dict whose ``type`` does not accept it.
    """
    if not options:
        return
    top = set(cfg) | runner_keys() | ADTOOL_KEYS
    for dotted in options:
        parts = str(dotted).split(".")
        if parts[0] not in top:
            raise ConfigError(
                f"--cfg-options {dotted}: '{parts[0]}' is not a key of the config; "
                + _close(parts[0], set(cfg) | runner_keys(), "`adtool print-config` lists them")
            )
        node = cfg[parts[0]] if parts[0] in cfg else _MISSING
        for depth, part in enumerate(parts[1:], start=1):
            if node is _MISSING or not isinstance(node, Mapping | list | tuple):
                break  # a new or non-dict value: nothing to check against
            child = _child(node, part)
            if child is not _MISSING:
                node = child
                continue
            if not isinstance(node, Mapping) or "type" not in node or part.startswith("_"):
                break
            # The override may change the type too: check against the type it sets.
            parent_path = ".".join(parts[:depth])
            parent = {**node, **{"type": options.get(f"{parent_path}.type", node["type"])}}
            accepted, valid = _type_accepts(parent, part)
            if not accepted:
                raise ConfigError(
                    f"--cfg-options {dotted}: {parent['type']} at '{parent_path}' does not "
                    f"accept the key '{part}'; "
                    + _close(part, valid | set(node), f"valid keys: {', '.join(sorted(valid))}")
                )
            break
