"""Make mmengine 0.10.x safe on current torch: checkpoints load and are written atomically.

Two problems, each fixed at mmengine's own extension point rather than by patching torch:

* torch >= 2.6 defaults ``torch.load(weights_only=True)``; mmengine's checkpoints hold a
  message hub, numpy scalars and config objects, so ``--resume`` and ``load_from`` fail
  with an ``UnpicklingError``. We register a local-file loader with mmengine's
  ``CheckpointLoader`` that loads with ``weights_only=False``. That is safe only for
  files the user trusts, which is what a work dir checkpoint is.
* mmengine writes files (checkpoints, ``last_checkpoint``) in place, so a killed run can
  leave a truncated checkpoint. We register a local file backend whose ``put`` and
  ``put_text`` write a temp file in the same folder and ``os.replace`` it.

:func:`apply` is idempotent and runs when ``adtool.engine`` is imported.
"""

from __future__ import annotations

import os.path as osp
from pathlib import Path

import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.fileio import io as mm_io
from mmengine.runner.checkpoint import CheckpointLoader

from adtool.fileio import atomic_write_bytes, atomic_write_text

_APPLIED = False


class AtomicLocalBackend(LocalBackend):
    """mmengine's local backend whose writes never leave a half-written file."""

    def put(self, obj: bytes, filepath: str | Path) -> None:
        atomic_write_bytes(filepath, obj)

    def put_text(self, obj: str, filepath: str | Path, encoding: str = "utf-8") -> None:
        atomic_write_text(filepath, obj, encoding)


def load_local_checkpoint(filename: str, map_location=None, logger=None) -> dict:
    """mmengine's local loader with ``weights_only=False`` (trusted work-dir files)."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f"checkpoint {filename} does not exist")
    return torch.load(filename, map_location=map_location, weights_only=False)


def apply() -> None:
    """Register the loader and the atomic backend with mmengine (once)."""
    global _APPLIED
    if _APPLIED:
        return
    CheckpointLoader.register_scheme(prefixes="", loader=load_local_checkpoint, force=True)
    register_backend("local", AtomicLocalBackend, force=True, prefixes="")
    # Drop plain local backends mmengine may already have cached.
    for key, backend in list(mm_io.backend_instances.items()):
        if type(backend) is LocalBackend:
            del mm_io.backend_instances[key]
    _APPLIED = True
