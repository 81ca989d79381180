"""Anomaly models: the base classes here, one subpackage per method.

Every subpackage (a folder with ``__init__.py``) is imported when this package is, so a
method registers its classes in MODELS by existing: adding a method means adding its
folder (plus configs and tests), with no import to add anywhere else. The names each
subpackage lists in ``__all__`` are re-exported here (``from adtool.models.anomaly
import PatchCore``).
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import BaseAnomalyModel, MemoryBankModel


def method_packages() -> list[str]:
    """Names of the method subpackages of ``adtool.models.anomaly``, sorted."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg)


__all__ = ["BaseAnomalyModel", "MemoryBankModel", "method_packages"]
for _name in method_packages():
    _module = importlib.import_module(f"{__name__}.{_name}")
    for _attr in getattr(_module, "__all__", ()):
        globals()[_attr] = getattr(_module, _attr)
        __all__.append(_attr)
