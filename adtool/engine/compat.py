"""Make mmengine 0.10.x safe on current torch: checkpoints load safely and are written atomically.

Two problems, each fixed at mmengine's own extension point rather than by patching torch:

* A ``.pth`` is a pickle, and ``torch.load(weights_only=False)`` runs whatever code a
  crafted one names. Every checkpoint (``load_from``, ``--resume``, tools/test.py,
  tools/infer.py) is read by :func:`load_checkpoint_file` with ``weights_only=True``,
  allowing exactly the extra types adtool and mmengine put in a checkpoint
  (:data:`SAFE_GLOBALS`: mmengine's message hub keeps its logged scalars in
  ``HistoryBuffer`` objects holding numpy arrays and scalars). We register it as
  mmengine's local-file ``CheckpointLoader``, so the runner's own load paths use it too.
* mmengine writes files (checkpoints, ``last_checkpoint``) in place, so a killed run can
  leave a truncated checkpoint. We register a local file backend whose ``put`` and
  ``put_text`` write a temp file in the same folder and ``os.replace`` it.

:func:`apply` is idempotent and runs when ``adtool.engine`` is imported.
"""

from __future__ import annotations

import os.path as osp
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.fileio import io as mm_io
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from adtool.errors import DataError
from adtool.fileio import atomic_write_bytes, atomic_write_text

_APPLIED = False


class AtomicLocalBackend(LocalBackend):
    """mmengine's local backend whose writes never leave a half-written file."""

    def put(self, obj: bytes, filepath: str | Path) -> None:
        atomic_write_bytes(filepath, obj)

    def put_text(self, obj: str, filepath: str | Path, encoding: str = "utf-8") -> None:
        atomic_write_text(filepath, obj, encoding)


def _history_buffer_method(obj: Any, name: str) -> Any:
    """``getattr`` as a checkpoint may call it: only ``HistoryBuffer.<statistic>``.

    Pickle protocol 2 stores a method reference such as ``HistoryBuffer.min`` (kept in
    the message hub's buffers) as ``getattr(HistoryBuffer, 'min')``. Allowing the real
    ``getattr`` would hand a crafted file every attribute of every allowed object.
    """
    if obj is HistoryBuffer and name in ("min", "max", "current", "mean"):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f"getattr({obj!r}, {name!r}) is not allowed in a checkpoint")


def _numpy_globals() -> list:
    """numpy's array/scalar reconstructors under the module names numpy 1.x and 2.x use."""
    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    entries: list = [np.ndarray, np.dtype]
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        entries += [
            (multiarray._reconstruct, f"{module}._reconstruct"),
            (multiarray.scalar, f"{module}.scalar"),
        ]
    # numpy >= 1.25 may name a dtype by its class (numpy.dtypes.Float64DType, ...).
    entries += [type(np.dtype(t)) for t in ("f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "?")]
    return entries


#: Everything beyond torch's own weights-only set that adtool and mmengine checkpoints
#: hold, found by saving a fitted PatchCore, a trained STFPM (optimizer, param scheduler,
#: message hub) and an HF ViT and listing ``torch.serialization.
#: get_unsafe_globals_in_checkpoint`` of each (tests/engine/test_safe_loading.py keeps it so).
SAFE_GLOBALS: list = [
    HistoryBuffer,
    (_history_buffer_method, "builtins.getattr"),
    *_numpy_globals(),
]


def load_checkpoint_file(path: str | Path, map_location: Any = "cpu") -> dict:
    """A checkpoint's dict, read without running code (``weights_only=True``).

    Args:
        path: The ``.pth`` file.
        map_location: As in ``torch.load``. Defaults to ``'cpu'``.

    Returns:
        The checkpoint (mmengine's ``{'meta', 'state_dict', ...}`` or a bare state dict).

    Raises:
        DataError: one line naming the file and the problem, when it is missing, truncated,
            not a torch checkpoint, holds something other than a dict, or names code or
            types that a checkpoint of adtool never holds.
    """
    path = Path(osp.expanduser(str(path)))
    if not path.is_file():
        raise DataError(f"checkpoint {path} not found; pass the .pth a training run wrote")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise DataError(f"checkpoint {path} {_unpickling_problem(e)}") from None
    except Exception as e:  # zip, pickle-stream and storage errors of a damaged file
        raise DataError(
            f"checkpoint {path} cannot be read, it is truncated or not a torch checkpoint "
            f"({_first_sentence(e)}); pass the .pth a training run wrote"
        ) from None
    if not isinstance(checkpoint, Mapping):
        raise DataError(
            f"checkpoint {path} holds a {type(checkpoint).__name__}, not a checkpoint dict; "
            "pass the .pth a training run wrote"
        )
    # A bare state dict keeps its OrderedDict ``_metadata`` (module versions) as saved.
    return checkpoint if isinstance(checkpoint, dict) else dict(checkpoint)


def _first_sentence(error: BaseException) -> str:
    """The start of an error message, short enough for one line."""
    text = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {text.split('. ')[0][:120]}"


def _unpickling_problem(error: pickle.UnpicklingError) -> str:
    """What the weights-only unpickler refused, in one clause."""
    text = str(error)
    for marker in ("Unsupported global: GLOBAL ", "unsupported GLOBAL ", "Unsupported operand "):
        if marker in text:
            name = text.split(marker, 1)[1].split()[0].rstrip(".,")
            return (
                f"refers to {name}, which an adtool checkpoint never holds (a pickle can run "
                "code, so it is not loaded); load only checkpoints adtool wrote"
            )
    if "not allowed in a checkpoint" in text:
        return f"was refused ({text.splitlines()[0]}); load only checkpoints adtool wrote"
    return (
        f"is not a torch checkpoint ({_first_sentence(error)}); pass the .pth a training run wrote"
    )


def load_local_checkpoint(filename: str, map_location=None, logger=None) -> dict:
    """mmengine's local-file loader: :func:`load_checkpoint_file` (weights only)."""
    return load_checkpoint_file(filename, map_location=map_location)


def _adapts_own_entries(module: torch.nn.Module) -> bool:
    """True for an adtool module that overrides ``_load_from_state_dict`` to adapt its
    entries (a memory bank that takes the saved size). Library layers' overrides (batch
    norm's version handling in torch and timm) do not count: their shapes must match."""
    cls = type(module)
    overridden = cls._load_from_state_dict is not torch.nn.Module._load_from_state_dict
    return overridden and cls.__module__.startswith("adtool.")


def _prefixes_where(model: torch.nn.Module, test) -> tuple[str, ...]:
    return tuple(name + "." for name, m in model.named_modules() if name and test(m))


def check_state_dict(
    model: torch.nn.Module,
    state_dict: Mapping,
    path: str | Path,
    holds: str | None = None,
    builds: str | None = None,
) -> None:
    """Refuse, in one line, a state dict written by another model or backbone.

    Keys missing from ``state_dict`` or present only there, and tensors whose shapes
    differ, are reported with the first example. Not counted: entries of an adtool module
    that adapts them on load (a memory bank that takes the saved size, a post-processor
    that loads older checkpoints without its buffers), extra entries of a module with a
    load pre-hook (a backbone that forgets the stages it dropped), and a missing
    batch-norm ``num_batches_tracked`` (older torch).

    Args:
        model: The model built from the config.
        state_dict: The checkpoint's ``state_dict``.
        path: The checkpoint file, named in the message.
        holds: What the file holds (e.g. ``'PaDiM (backbone resnet18)'``), when known.
            Defaults to None (then its top-level parts are named).
        builds: What the config builds, named beside ``holds``. Defaults to None.

    Raises:
        DataError: when the state dict does not fit ``model``.
    """
    adapting = _prefixes_where(model, _adapts_own_entries)
    hooked = _prefixes_where(model, lambda m: bool(getattr(m, "_load_state_dict_pre_hooks", {})))
    expected = model.state_dict()
    missing = [
        k
        for k in expected
        if k not in state_dict
        and not k.startswith(adapting)
        and not k.endswith("num_batches_tracked")
    ]
    unexpected = [
        k for k in state_dict if k not in expected and not k.startswith(adapting + hooked)
    ]
    mismatched = [
        k
        for k, v in state_dict.items()
        if k in expected
        and not k.startswith(adapting)
        and hasattr(v, "shape")
        and tuple(v.shape) != tuple(expected[k].shape)
    ]
    if not (missing or unexpected or mismatched):
        return
    held = _prefixes(state_dict)
    wanted = _prefixes(expected)
    if holds and builds:
        head = f"checkpoint {path} holds {holds} but the config builds {builds}"
    else:
        head = f"checkpoint {path} does not fit the model of this config"
    if (missing or unexpected) and held != wanted:
        detail = f"it holds {held}, the config's model has {wanted}"
    elif missing or unexpected:
        first = (missing or unexpected)[0]
        kind = "lacks" if missing else "has an extra"
        detail = f"the file {kind} '{first}'"
    else:
        detail = ""
    if missing or unexpected:
        detail += f"; {len(missing)} missing, {len(unexpected)} unexpected entries"
    if mismatched:
        k = mismatched[0]
        saved, wanted_shape = state_dict[k], expected[k]
        channels = f"channels {_channels(saved)} vs {_channels(wanted_shape)}"
        shape = (
            f"{len(mismatched)} tensors differ in shape (e.g. {k.split('.', 1)[0]} '{k}': "
            f"checkpoint {tuple(saved.shape)} vs model {tuple(wanted_shape.shape)}, {channels})"
        )
        detail = f"{detail}; {shape}" if detail else shape
    raise DataError(f"{head}: {detail}; pass the config the checkpoint was trained with")


def _channels(tensor) -> int | None:
    return int(tensor.shape[0]) if getattr(tensor, "dim", lambda: 0)() else None


def _prefixes(state_dict: Mapping) -> str:
    """The top-level parts of a state dict, e.g. ``backbone.*, head.*``."""
    tops = sorted({k.split(".", 1)[0] for k in state_dict})
    return ", ".join(f"{t}.*" for t in tops) or "nothing"


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
