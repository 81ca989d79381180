"""Checkpoint files and models built from them: the one reader, writer and model loader.

Layer 1 of ``adtool.apis`` (above :mod:`adtool.apis.config_index` only). Every checkpoint
read of the Python API goes through :func:`read_checkpoint`, every write through
:func:`write_checkpoint`; :func:`load_model` builds any config's model (anomaly or
HuggingFace task) with a checkpoint's weights, and :func:`check_state_dict` turns a
checkpoint of another model or backbone into one line naming both.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.model import is_model_wrapper

from adtool.engine.compat import check_state_dict as compat_check_state_dict
from adtool.engine.compat import load_checkpoint_file
from adtool.errors import ConfigError, DataError
from adtool.fileio import atomic_path
from adtool.models.hf.base import skip_pretrained_weights
from adtool.registry import DATASETS, MODELS, register_all_modules

_BACKBONE_TYPES = ("TimmBackbone", "ViTTokenBackbone", "PDNBackbone")


def read_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint file's content (on the CPU).

    Raises:
        DataError: when the file is missing, truncated or not a checkpoint (one line).
    """
    return load_checkpoint_file(path)


def write_checkpoint(path: str | os.PathLike, checkpoint: dict) -> None:
    """Save ``checkpoint`` to ``path`` atomically (a killed write leaves the old file)."""
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def update_checkpoint(
    path: str | os.PathLike, meta: dict | None = None, state: dict | None = None
) -> None:
    """Merge ``meta`` into the checkpoint's ``meta`` and ``state`` into its ``state_dict``."""
    checkpoint = read_checkpoint(path)
    if meta:
        if not isinstance(checkpoint.get("meta"), dict):
            checkpoint["meta"] = {}
        checkpoint["meta"].update(meta)
    if state:
        target = checkpoint.setdefault("state_dict", {})
        target.update({k: v.detach().cpu() for k, v in state.items()})
    write_checkpoint(path, checkpoint)


def last_checkpoint(work_dir: str | os.PathLike) -> Path | None:
    """The checkpoint that mmengine's ``<work_dir>/last_checkpoint`` names, if it exists."""
    pointer = Path(work_dir) / "last_checkpoint"
    if not pointer.is_file():
        return None
    text = pointer.read_text(encoding="utf-8").strip()
    return Path(text) if text and Path(text).is_file() else None


def state_dict_of(checkpoint: dict) -> dict:
    """The model weights of a checkpoint (``state_dict``, mmengine's ``module.`` dropped)."""
    state = checkpoint.get("state_dict", checkpoint)
    return {k.removeprefix("module."): v for k, v in state.items() if torch.is_tensor(v)}


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DDP (or other mmengine) wrapper."""
    return model.module if is_model_wrapper(model) else model


def unload_pretrained(model_cfg) -> None:
    """Set ``weights=None`` on every timm backbone: a checkpoint carries the weights."""
    if isinstance(model_cfg, dict):
        if model_cfg.get("type") in _BACKBONE_TYPES:
            model_cfg["weights"] = None
        for value in model_cfg.values():
            unload_pretrained(value)
    elif isinstance(model_cfg, list):
        for value in model_cfg:
            unload_pretrained(value)


@contextlib.contextmanager
def weights_from_checkpoint(cfg: Config) -> Iterator[Config]:
    """Build ``cfg``'s model without reading pretrained weights (a checkpoint follows).

    Timm backbones get ``weights=None`` (in place); HuggingFace wrappers read only their
    folder's ``config.json`` while the context is open.
    """
    unload_pretrained(cfg.model)
    with skip_pretrained_weights():
        yield cfg


def complete_model_cfg(cfg: Config, dataset_meta: dict | None = None) -> None:
    """Fill model settings the config leaves unset (None) from its data, in place.

    A dataset class may offer ``model_settings(dataset_cfg, metainfo=None) -> dict``
    (ImageFolderCls: ``num_classes`` from its class folders, or from ``metainfo``'s
    classes, e.g. a checkpoint's ``dataset_meta``), and a model class
    ``settings_from_data(model_cfg, dataset_cfg, metainfo=None) -> dict`` (Ensemble: the
    category whose members to load). A value the config sets explicitly must agree.

    Raises:
        ConfigError: when an explicit ``model.<key>`` disagrees with the data.
    """
    loader = cfg.get("train_dataloader") or cfg.get("test_dataloader") or {}
    spec = loader.get("dataset") if isinstance(loader, dict) else None
    if not spec or not isinstance(cfg.get("model"), dict):
        return
    kind = spec.get("type")
    dataset_cls = DATASETS.get(kind) if isinstance(kind, str) else kind
    settings = getattr(dataset_cls, "model_settings", None)
    found = {} if settings is None else dict(settings(spec, metainfo=dataset_meta))
    # A model class may also read keys from the data (an Ensemble keyed by category).
    model_kind = cfg.model.get("type")
    model_cls = MODELS.get(model_kind) if isinstance(model_kind, str) else model_kind
    from_data = getattr(model_cls, "settings_from_data", None)
    if from_data is not None:
        found.update(from_data(cfg.model, spec, metainfo=dataset_meta))
    for key, value in found.items():
        current = cfg.model.get(key)
        if current is None:
            cfg.model[key] = value
        elif current != value:
            raise ConfigError(
                f"model.{key}={current} but the {kind} data at {spec.get('data_root')} gives "
                f"{key}={value}; leave model.{key} unset (it is read from the data) or set it "
                f"to {value}"
            )


# ----------------------------------------------------------------- what a file holds


def _model_summary(model_cfg) -> str:
    """``'PatchCore (backbone resnet18)'`` from a model config dict."""
    kind = model_cfg.get("type", "?") if isinstance(model_cfg, dict) else "?"
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    backbone = model_cfg.get("backbone") if isinstance(model_cfg, dict) else None
    arch = backbone.get("arch") if isinstance(backbone, dict) else None
    return f"{kind} (backbone {arch})" if arch else kind


def _literal(node: ast.AST | None):
    try:
        return ast.literal_eval(node) if node is not None else None
    except ValueError:
        return None


def _dict_items(node: ast.AST | None) -> dict[str, ast.AST]:
    """The keys of a ``dict(...)`` call or ``{...}`` literal in config source."""
    if isinstance(node, ast.Call):
        return {k.arg: k.value for k in node.keywords if k.arg}
    if isinstance(node, ast.Dict):
        return {_literal(k): v for k, v in zip(node.keys, node.values) if k is not None}
    return {}


def checkpoint_model(checkpoint: dict) -> str | None:
    """What model a checkpoint holds, from the config text mmengine saved in its meta.

    The text is parsed, never executed: a checkpoint is untrusted input.
    """
    text = (checkpoint.get("meta") or {}).get("cfg")
    if not isinstance(text, str):
        return None
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    for node in tree.body:
        targets = [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
        if isinstance(node, ast.Assign) and "model" in targets:
            model = _dict_items(node.value)
            arch = _literal(_dict_items(model.get("backbone")).get("arch"))
            summary = {"type": _literal(model.get("type")) or "?"}
            if isinstance(arch, str):
                summary["backbone"] = {"arch": arch}
            return _model_summary(summary)
    return None


def check_state_dict(
    model: torch.nn.Module, checkpoint: dict, path: str | os.PathLike, model_cfg=None
) -> None:
    """Refuse, in one line, a checkpoint whose weights do not fit ``model``.

    :func:`adtool.engine.compat.check_state_dict` compares the weights; this names what
    the file holds (from its meta) and what the config builds.

    Raises:
        DataError: naming the file, what it holds and what the config builds.
    """
    model = unwrap(model)
    builds = _model_summary(model_cfg) if model_cfg is not None else type(model).__name__
    compat_check_state_dict(
        model, state_dict_of(checkpoint), path, holds=checkpoint_model(checkpoint), builds=builds
    )


def load_model(cfg: Config, checkpoint: str | os.PathLike, device: str = "cpu"):
    """Any config's model (anomaly or task) with a checkpoint's weights, in eval mode.

    Args:
        cfg: The config the checkpoint was trained with.
        checkpoint: A ``.pth`` written by training.
        device: Torch device. Defaults to ``'cpu'``.

    Returns:
        ``(model, checkpoint_dict)``; the dict holds ``meta``.

    Raises:
        DataError: when the checkpoint is missing, unreadable or of another model.
        ConfigError: for an unknown device.
    """
    register_all_modules()
    loaded = read_checkpoint(checkpoint)
    cfg = copy.deepcopy(cfg)
    complete_model_cfg(cfg, (loaded.get("meta") or {}).get("dataset_meta"))
    with weights_from_checkpoint(cfg):
        model = MODELS.build(cfg.model)
    check_state_dict(model, loaded, checkpoint, cfg.model)
    state = state_dict_of(loaded)
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # a buffer that does not fit (size mismatch beyond a bank)
        detail = str(e).strip().splitlines()
        raise DataError(
            f"checkpoint {checkpoint} does not fit the model of this config "
            f"({' '.join(line.strip() for line in detail[:2])[:200]}); pass the config the "
            "checkpoint was trained with"
        ) from None
    return model.to(torch_device(device)).eval(), loaded


def torch_device(device: str) -> torch.device:
    """``device`` as a torch device, checked to exist here.

    Raises:
        ConfigError: for an unknown device or CUDA without a GPU.
    """
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device '{device}'; use cpu or cuda[:N]") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' requested but CUDA is not available; use cpu")
    return dev
