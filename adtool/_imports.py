"""Keep one-time imports light: what ``import adtool`` does before anything else.

mmengine's optimiser builder imports ``transformers`` (about 2 s) only to register its
``Adafactor`` optimiser. The builder is imported here with ``transformers`` hidden and
``Adafactor`` registered as a function that imports it when a config builds it, so
scoring an image (tools/infer.py) never loads transformers; the HF models import it
themselves when used.
"""

from __future__ import annotations

import sys


def _adafactor(*args, **kwargs):
    """transformers' ``Adafactor``, imported on first use."""
    from transformers import Adafactor

    return Adafactor(*args, **kwargs)


def import_mmengine_optim_without_transformers() -> None:
    """Import ``mmengine.optim`` without it importing ``transformers``."""
    if "mmengine.optim" in sys.modules or "transformers" in sys.modules:
        return
    sys.modules["transformers"] = None  # makes `from transformers import ...` fail fast
    try:
        import mmengine.optim  # noqa: F401
    finally:
        del sys.modules["transformers"]
    from mmengine.registry import OPTIMIZERS

    if "Adafactor" not in OPTIMIZERS.module_dict:
        OPTIMIZERS.register_module(name="Adafactor", module=_adafactor)
