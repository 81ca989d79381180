"""CNN feature extractor from timm with offline weights."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from mmengine.model import BaseModule

from adtool.errors import ConfigError, WeightsNotFoundError
from adtool.models.backbones.feature_info import conv_feature_shapes
from adtool.models.backbones.weights import (
    check_arch,
    load_timm_state_dict,
    resolve_backbone_weights,
)
from adtool.models.fast_inference import FoldedNetwork, fast_inference_enabled, run_folded
from adtool.registry import MODELS


class _DropUnexpectedKeys(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Unexpected keys")


@contextmanager
def _quiet_head_keys() -> Iterator[None]:
    """Silence timm's notice that head weights went unused by a features-only network.

    The state dict is a full classifier's; ``features_only`` drops the head by design.
    Missing keys still fail loudly.
    """
    logger = logging.getLogger("timm.models._builder")
    quiet = _DropUnexpectedKeys()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def _check_covered(model, state: dict, arch: str, path) -> None:
    """Refuse a file that leaves any layer of the feature network at random init.

    timm loads features-only networks non-strictly and only logs missing keys.
    """
    # FeatureGetterNet (transformers) nests the network under 'model.'.
    missing = [
        k for k in model.state_dict() if k not in state and k.removeprefix("model.") not in state
    ]
    if missing:
        raise WeightsNotFoundError(
            f"weights file {path} lacks {len(missing)} tensors of {arch} (e.g. {missing[0]}); "
            "it is for another network"
        )


def _drop_unused_blocks(model: torch.nn.Module) -> bool:
    """Remove the stages after the last returned level of a timm EfficientNet.

    timm's ``EfficientNetFeatures`` runs every block and only collects the requested
    levels; for EfficientNet-Lite0 with levels up to stride 16 the stride-32 stages cost a
    tenth of the forward pass for nothing. (timm's ResNet feature nets stop by themselves.)

    Returns:
        True when blocks were removed.
    """
    stage_out = getattr(model, "_stage_out_idx", None)
    blocks = getattr(model, "blocks", None)
    if not stage_out or not isinstance(blocks, torch.nn.Sequential):
        return False
    if getattr(model, "feature_hooks", None) is not None:
        return False  # 'bottleneck' feature location reads hooks inside blocks: keep all
    last = max(stage_out)  # features are taken after block (stage - 1)
    if 0 < last < len(blocks):
        model.blocks = blocks[:last]
        return True
    return False


def _ignore_dropped_blocks(module, state_dict, prefix, *args) -> None:
    """Load-state-dict pre-hook: forget the weights of stages the backbone dropped."""
    head = f"{prefix}model.blocks."
    kept = len(module.model.blocks)
    for key in [k for k in state_dict if k.startswith(head)]:
        index = key[len(head) :].split(".", 1)[0]
        if index.isdigit() and int(index) >= kept:
            del state_dict[key]


#: ``train_memory_format`` names -> torch memory formats (None: as created, contiguous).
MEMORY_FORMATS = {"channels_last": torch.channels_last, "contiguous": None}


@MODELS.register_module()
class TimmBackbone(BaseModule):
    """Multi-level features of a timm network (``features_only``).

    Args:
        arch: timm model name, e.g. ``'wide_resnet50_2'`` or ``'tf_efficientnet_lite0'``.
        out_indices: Feature levels to return. Defaults to (2, 3).
        frozen: Freeze all parameters and keep the network in eval mode (batch-norm
            statistics fixed), as feature-embedding methods require. Defaults to True.
        weights: ``'imagenet'`` to resolve offline weights (see
            :func:`resolve_backbone_weights`), a file path, or None for random init
            (tests). Defaults to ``'imagenet'``.
        backbone_dir: Folder holding ``<arch>.<ext>`` weight files. Defaults to
            ``$ADTOOL_BACKBONE_DIR`` or ``./backbones``.
        model_kwargs: Extra keyword arguments for ``timm.create_model``. Defaults to None.
        train_memory_format: Memory layout of a trained (``frozen=False``) network's weights
            and input: ``'channels_last'`` (oneDNN's faster convolutions: forward+backward
            1.3-1.7x faster on one CPU thread for EfficientNet-Lite0 and ResNet-18, results
            equal within float rounding) or ``'contiguous'``. A frozen network ignores it (its
            test path is channels-last already, adtool/models/fast_inference.py).
            Defaults to ``'channels_last'``.
        init_cfg: mmengine init config. Defaults to None.
    """

    def __init__(
        self,
        arch: str,
        out_indices: Sequence[int] = (2, 3),
        frozen: bool = True,
        weights: str | os.PathLike | None = "imagenet",
        backbone_dir: str | os.PathLike | None = None,
        model_kwargs: dict | None = None,
        train_memory_format: str = "channels_last",
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        import timm

        if train_memory_format not in MEMORY_FORMATS:
            raise ConfigError(
                f"TimmBackbone train_memory_format must be one of {sorted(MEMORY_FORMATS)}, "
                f"got {train_memory_format!r}"
            )

        check_arch(arch)  # before weights: an unknown name is not "weights missing"
        self.arch = arch
        self.out_indices = tuple(out_indices)
        self.frozen = frozen
        kwargs = dict(features_only=True, out_indices=self.out_indices, **(model_kwargs or {}))
        if weights is None:
            self.model = timm.create_model(arch, pretrained=False, **kwargs)
        else:
            path = resolve_backbone_weights(arch, weights, backbone_dir)
            state = load_timm_state_dict(arch, path)
            # timm's own loader applies the arch's key filters; the state dict is passed
            # in directly so timm never looks at the hub.
            with _quiet_head_keys():
                self.model = timm.create_model(
                    arch, pretrained=True, pretrained_cfg_overlay=dict(state_dict=state), **kwargs
                )
            self.weights_path = str(path)
            _check_covered(self.model, state, arch, path)
        if _drop_unused_blocks(self.model):
            # Checkpoints written before the stages were dropped still load strictly.
            self.register_load_state_dict_pre_hook(_ignore_dropped_blocks)
        if frozen:
            self.model.requires_grad_(False)
            self.model.eval()
        # Only a trained network changes layout: a frozen one keeps the weights as loaded.
        self.train_memory_format = None if frozen else MEMORY_FORMATS[train_memory_format]
        if self.train_memory_format is not None:
            self.model.to(memory_format=self.train_memory_format)
        # Set by the anomaly model's train()/eval(): test through a folded copy.
        self.fast_inference = False
        self._folded = FoldedNetwork()

    @property
    def out_channels(self) -> list[int]:
        """Channels of each returned level."""
        return list(self.model.feature_info.channels())

    @property
    def reductions(self) -> list[int]:
        """Stride of each returned level relative to the input."""
        return list(self.model.feature_info.reduction())

    def feature_shapes(self, input_size: int | Sequence[int]) -> list[tuple[int, int, int]]:
        """(C, h, w) of each returned level for an input of ``input_size`` (H, W), no forward.

        Sizes are ``ceil(H / stride)``: what the padded stride-2 stages of ResNets and
        EfficientNets give, odd sizes included (checked against a forward in the tests).
        """
        return conv_feature_shapes(self.out_channels, self.reductions, input_size)

    def init_weights(self) -> None:
        """Weights are loaded in ``__init__``; mmengine's re-initialisation must not undo it."""

    def train(self, mode: bool = True) -> TimmBackbone:
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if (
            self.fast_inference
            and not self.model.training
            and (self.frozen or not torch.is_grad_enabled())
            and fast_inference_enabled()
        ):
            with torch.no_grad():
                return run_folded(self._folded, self.model, x)
        if self.frozen:
            with torch.no_grad():
                return self.model(x)
        if self.training and self.train_memory_format is not None:
            x = x.contiguous(memory_format=self.train_memory_format)
        return self.model(x)
