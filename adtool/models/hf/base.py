"""Base of the HuggingFace task wrappers: a transformers model as an mmengine BaseModel.

The contract every wrapper in ``adtool/models/hf/`` follows (ViT, D-FINE, EoMT, Swin2SR):

- Subclass :class:`HFTaskModel`, set the class attributes ``task`` (``'classification'``,
  ``'detection'``, ``'segmentation'`` or ``'super_resolution'``), ``hf_model_class`` (the
  transformers class name, e.g. ``'ViTForImageClassification'``), ``hf_config_class``
  (e.g. ``'ViTConfig'``) and ``hub_id`` (the hub checkpoint named in error messages,
  never downloaded), and call ``super().__init__(pretrained=..., hf_config=...,
  data_preprocessor=..., init_cfg=..., **from_pretrained_kwargs)``. The built transformers
  model is ``self.model``.
- ``pretrained='backbones/hf/<name>'`` loads a folder written by ``save_pretrained``
  (``config.json`` + weights); ``hf_config=dict(...)`` gives config kwargs for a random
  init; when both are given the kwargs override the folder's config. Inside
  :func:`skip_pretrained_weights` (tests from a checkpoint, inference) only the folder's
  ``config.json`` is read: the checkpoint carries the weights.
- Inputs arrive as lists of (3, H, W) uint8 tensors (``pseudo_collate``);
  :class:`HFDataPreprocessor` stacks them (padding to the largest) and normalises with
  ``mean``/``std`` on the 0-255 scale. Data samples are mmengine ``BaseDataElement`` s.
- ``forward(inputs, data_samples, mode)``: ``'loss'`` -> ``dict(loss=...)`` (plus logged
  parts), ``'predict'`` -> the data samples with predictions set, ``'tensor'`` -> raw
  transformers outputs. Prediction fields: classification ``pred_label`` (int) and
  ``pred_scores`` (C,) softmax; detection ``pred_instances`` with ``bboxes`` (N, 4) xyxy
  in input pixels, ``scores`` (N,), ``labels`` (N,); segmentation ``pred_sem_seg`` (H, W)
  long; super-resolution ``pred_img`` (3, H, W) float in [0, 1]. All on the CPU.
- Without transformers installed, building any wrapper raises a one-line
  :class:`~adtool.errors.ConfigError` that says ``pip install -e ".[hf]"``.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import os
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar

import torch
from mmengine.model import BaseModel, ImgDataPreprocessor
from mmengine.structures import BaseDataElement

from adtool.errors import ConfigError
from adtool.registry import MODELS

INSTALL_HINT = 'pip install -e ".[hf]"'
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)

_SKIP_WEIGHTS: ContextVar[bool] = ContextVar("adtool_hf_skip_weights", default=False)


def import_transformers() -> Any:
    """The ``transformers`` module, or a one-line ConfigError saying how to install it."""
    try:
        import transformers
    except ModuleNotFoundError as e:
        if e.name != "transformers":  # a broken install: the real error, not "install it"
            raise
        raise ConfigError(
            f"HuggingFace models need the transformers package; install it with {INSTALL_HINT}"
        ) from None
    return transformers


@contextlib.contextmanager
def skip_pretrained_weights() -> Iterator[None]:
    """Build wrappers from the pretrained folder's ``config.json`` only (no weight file).

    Used when a checkpoint will overwrite every weight anyway (testing a saved model,
    inference), so the folder needs no weights and nothing is read twice.
    """
    token = _SKIP_WEIGHTS.set(True)
    try:
        yield
    finally:
        _SKIP_WEIGHTS.reset(token)


def resolve_pretrained_dir(pretrained: str | os.PathLike) -> Path:
    """The local folder of ``pretrained``: the path itself, else under ``$ADTOOL_BACKBONE_DIR``.

    ``'backbones/hf/<name>'`` in a config also resolves as ``$ADTOOL_BACKBONE_DIR/hf/<name>``
    when the relative path does not exist, so configs work from any working directory.
    """
    path = Path(pretrained).expanduser()
    if path.is_dir() or path.is_absolute():
        return path
    env_dir = os.environ.get("ADTOOL_BACKBONE_DIR")
    if env_dir and path.parts and path.parts[0] == "backbones":
        candidate = Path(env_dir).joinpath(*path.parts[1:])
        if candidate.is_dir():
            return candidate
    return path


def _fetch_hint(model_class: str, hub_id: str, folder: Path) -> str:
    return (
        f'on a machine with internet run: python -c "from transformers import {model_class}, '
        f"AutoImageProcessor as P; {model_class}.from_pretrained('{hub_id}').save_pretrained("
        f"'{folder}'); P.from_pretrained('{hub_id}').save_pretrained('{folder}')\" and copy "
        "the folder here (docs/hf_models.md)"
    )


def check_pretrained_dir(
    folder: Path, model_class: str, hub_id: str, need_weights: bool = True
) -> None:
    """Raise a one-line ConfigError unless ``folder`` holds config.json (and weights)."""
    hint = _fetch_hint(model_class, hub_id, folder)
    if not folder.is_dir():
        raise ConfigError(f"pretrained folder {folder} for {model_class} not found; {hint}")
    if not (folder / "config.json").is_file():
        raise ConfigError(f"pretrained folder {folder} has no config.json; {hint}")
    if need_weights and not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise ConfigError(
            f"pretrained folder {folder} has no weights (looked for {', '.join(WEIGHT_FILES)}); "
            f"{hint}"
        )


def check_hf_config_keys(config_cls, hf_config: dict, model_class: str) -> None:
    """Refuse a key that ``config_cls`` does not know (transformers would silently keep it).

    Raises:
        ConfigError: naming the key, the config class and the closest known key.
    """
    known = {"num_labels"}  # a PretrainedConfig property that sets id2label/label2id
    for cls in config_cls.__mro__:
        if "__init__" in vars(cls):
            known |= set(inspect.signature(cls.__init__).parameters)
    known |= set(config_cls().to_dict())
    for key in hf_config:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"{model_class}: hf_config key '{key}' is not a field of {config_cls.__name__}"
                f"{hint}"
            )


def build_hf_model(
    model_class: str,
    config_class: str,
    hub_id: str,
    pretrained: str | os.PathLike | None = None,
    hf_config: dict | None = None,
    **from_pretrained_kwargs,
) -> torch.nn.Module:
    """A transformers model from a local folder, a config dict, or both (dict overrides).

    Args:
        model_class: transformers class name, e.g. ``'ViTForImageClassification'``.
        config_class: Its config class name, e.g. ``'ViTConfig'``.
        hub_id: Hub checkpoint named in the error message of a missing folder.
        pretrained: Folder written by ``save_pretrained``. Defaults to None (random init).
        hf_config: Config kwargs; with ``pretrained`` they override the folder's config
            (e.g. ``num_labels``). Defaults to None.
        **from_pretrained_kwargs: Passed to ``from_pretrained`` (e.g.
            ``ignore_mismatched_sizes=True``).

    Returns:
        The model (train mode off, as transformers builds it).
    """
    transformers = import_transformers()
    model_cls = getattr(transformers, model_class)
    config_cls = getattr(transformers, config_class)
    if pretrained is None:
        if hf_config is None:
            raise ConfigError(
                f"{model_class} needs pretrained='backbones/hf/<name>' (a local folder) or "
                "hf_config=dict(...) (random init); the config gives neither"
            )
        check_hf_config_keys(config_cls, hf_config, model_class)
        return model_cls(config_cls(**dict(hf_config)))
    check_hf_config_keys(config_cls, hf_config or {}, model_class)
    folder = resolve_pretrained_dir(pretrained)
    skip = _SKIP_WEIGHTS.get()
    check_pretrained_dir(folder, model_class, hub_id, need_weights=not skip)
    overrides = dict(hf_config or {})
    if skip:
        config = config_cls.from_pretrained(str(folder), local_files_only=True, **overrides)
        return model_cls(config)
    return model_cls.from_pretrained(
        str(folder), local_files_only=True, **overrides, **from_pretrained_kwargs
    )


@MODELS.register_module()
class HFDataPreprocessor(ImgDataPreprocessor):
    """Stack (3, H, W) uint8 images (padding to the largest) and normalise them.

    ``mean``/``std`` are on the 0-255 scale: ImageNet's ``[123.675, 116.28, 103.53]`` /
    ``[58.395, 57.12, 57.375]`` for ViT, ``[0, 0, 0]`` / ``[255, 255, 255]`` (plain [0, 1])
    for Swin2SR, whose model subtracts its own mean. Data samples pass through unchanged.
    """


class HFTaskModel(BaseModel):
    """A transformers vision model as an mmengine ``BaseModel`` (see the module docstring).

    Args:
        pretrained: Local folder written by ``save_pretrained``. Defaults to None.
        hf_config: transformers config kwargs (random init, or overrides of the folder's
            config). Defaults to None.
        data_preprocessor: Config of the batching/normalising step. Defaults to
            :class:`HFDataPreprocessor` with no normalisation (0-255 floats).
        init_cfg: mmengine init config. Defaults to None.
        **from_pretrained_kwargs: Passed to ``from_pretrained``.
    """

    task: ClassVar[str] = ""
    hf_model_class: ClassVar[str] = ""
    hf_config_class: ClassVar[str] = ""
    hub_id: ClassVar[str] = ""

    def __init__(
        self,
        pretrained: str | None = None,
        hf_config: dict | None = None,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
        **from_pretrained_kwargs,
    ) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type="HFDataPreprocessor", _scope_="adtool")
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        # The one list of tasks lives with the configs that name them (imported here, not at
        # the top: adtool.apis builds models from this package).
        from adtool.apis.config_index import TASKS

        if self.task not in TASKS or self.task == "anomaly":
            raise TypeError(f"{type(self).__name__}.task must be one of {TASKS[1:]}")
        self.pretrained = None if pretrained is None else str(pretrained)
        self.model = build_hf_model(
            self.hf_model_class,
            self.hf_config_class,
            self.hub_id,
            pretrained=pretrained,
            hf_config=hf_config,
            **from_pretrained_kwargs,
        )

    def init_weights(self) -> None:
        # transformers initialises (or loads) its own weights; mmengine's default init
        # would overwrite pretrained weights.
        pass

    def forward(
        self,
        inputs: torch.Tensor,
        data_samples: list[BaseDataElement] | None = None,
        mode: str = "tensor",
    ):
        if mode == "loss":
            return self.loss(inputs, data_samples)
        if mode == "predict":
            if data_samples is None:
                data_samples = [BaseDataElement() for _ in range(len(inputs))]
            return self.predict(inputs, data_samples)
        if mode == "tensor":
            return self._forward(inputs, data_samples)
        raise ValueError(f"mode must be 'loss', 'predict' or 'tensor', got {mode!r}")

    def _forward(self, inputs: torch.Tensor, data_samples: list[BaseDataElement] | None = None):
        """Raw transformers outputs of a normalised batch."""
        raise NotImplementedError

    def loss(self, inputs: torch.Tensor, data_samples: list[BaseDataElement]) -> dict:
        """Training losses; ``'loss'`` is what the optimiser steps on."""
        raise NotImplementedError

    def predict(
        self, inputs: torch.Tensor, data_samples: list[BaseDataElement]
    ) -> list[BaseDataElement]:
        """``data_samples`` with the task's prediction fields set (CPU tensors)."""
        raise NotImplementedError
