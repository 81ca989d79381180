"""Patch tokens of one or several blocks of a timm vision transformer, as feature maps."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from mmengine.model import BaseModule

from adtool.errors import ConfigError, WeightsNotFoundError
from adtool.models.backbones.feature_info import size2
from adtool.models.backbones.weights import load_timm_state_dict, resolve_backbone_weights
from adtool.registry import MODELS


def _floor_div(n: int, d: int) -> int:
    return n // d


def _ceil_div(n: int, d: int) -> int:
    return -(-n // d)


@MODELS.register_module()
class ViTTokenBackbone(BaseModule):
    """The patch tokens after block ``block_index`` of a ViT / DeiT / CaiT, as (B, C, h, w).

    The image runs through the patch embedding (with the class and distillation tokens a
    ViT or DeiT prepends) and the first ``block_index + 1`` transformer blocks; the
    network's final norm is applied if ``norm``; the class / distillation tokens are
    dropped and the patch tokens are laid out on their grid, ``h = H / patch``,
    ``w = W / patch``. Blocks after ``block_index`` and the classifier are removed after
    the weights are loaded. FastFlow (Yu et al. 2021, Table 6) uses the tokens after
    block 7 of DeiT-base-distilled-384 and block 40 of CaiT-M48-448.

    ``block_indices`` returns one output per listed block instead (Dinomaly: blocks 2-9
    of DINOv2); ``prefix_tokens=True`` keeps the class / register tokens, each output then
    being the whole token sequence (B, P + h * w, C), prefix tokens first and the patch
    tokens in row-major order (``num_prefix_tokens`` = P).

    Args:
        arch: timm model name, e.g. ``'deit_base_distilled_patch16_384'`` or
            ``'cait_m48_448'`` (any timm model with ``forward_intermediates``).
        block_index: Index (from 0) of the block whose output is returned. Defaults to 7
            (FastFlow's DeiT setting).
        block_indices: Indices of several blocks, one output each (in this order);
            None returns ``block_index`` alone. Defaults to None.
        prefix_tokens: Return the token sequences with the class / register tokens
            instead of patch-token maps. Defaults to False.
        norm: Apply the network's final (pretrained) norm layer to the tokens. Defaults
            to True.
        img_size: Input size the network is built for (its positional embedding); None
            keeps the architecture's own. Defaults to None.
        frozen: Freeze all parameters and keep the network in eval mode. Defaults to True.
        weights: ``'imagenet'`` to resolve offline weights (see
            :func:`resolve_backbone_weights`), a file path, or None for random init
            (tests). Defaults to ``'imagenet'``.
        backbone_dir: Folder holding ``<arch>.<ext>`` weight files. Defaults to
            ``$ADTOOL_BACKBONE_DIR`` or ``./backbones``.
        model_kwargs: Extra keyword arguments for ``timm.create_model``. Defaults to None.
        init_cfg: mmengine init config. Defaults to None.
    """

    def __init__(
        self,
        arch: str,
        block_index: int = 7,
        block_indices: Sequence[int] | None = None,
        prefix_tokens: bool = False,
        norm: bool = True,
        img_size: int | tuple[int, int] | None = None,
        frozen: bool = True,
        weights: str | os.PathLike | None = "imagenet",
        backbone_dir: str | os.PathLike | None = None,
        model_kwargs: dict | None = None,
        init_cfg: dict | None = None,
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        import timm

        self.arch = arch
        self.block_index = block_index
        self.block_indices = [block_index] if block_indices is None else list(block_indices)
        self.prefix_tokens = prefix_tokens
        self.norm = norm
        self.frozen = frozen
        kwargs = dict(model_kwargs or {})
        if img_size is not None:
            kwargs["img_size"] = img_size
        if weights is None:
            model = timm.create_model(arch, pretrained=False, **kwargs)
        else:
            path = resolve_backbone_weights(arch, weights, backbone_dir)
            state = load_timm_state_dict(arch, path)
            # The whole classifier is built, so timm loads strictly (a file for another
            # network fails); its filter resamples a ViT's position embedding to img_size.
            try:
                model = timm.create_model(
                    arch, pretrained=True, pretrained_cfg_overlay=dict(state_dict=state), **kwargs
                )
            except RuntimeError as e:
                reason = str(e).splitlines()[0]
                raise WeightsNotFoundError(
                    f"weights file {path} does not fit {arch} ({reason}); it is for another network"
                ) from None
            self.weights_path = str(path)
        if not hasattr(model, "forward_intermediates") or not hasattr(model, "blocks"):
            raise ConfigError(
                f"ViTTokenBackbone needs a timm vision transformer; {arch} has no "
                "transformer blocks; use TimmBackbone for convolutional networks"
            )
        n_blocks = len(model.blocks)
        key = "block_index" if block_indices is None else "block_indices"
        if not self.block_indices or not all(0 <= i < n_blocks for i in self.block_indices):
            raise ConfigError(
                f"ViTTokenBackbone {key}={block_index if block_indices is None else block_indices}"
                f" is out of range for {arch} ({n_blocks} blocks); use 0..{n_blocks - 1}"
            )
        # Later blocks, the classifier (and CaiT's class-attention blocks) never run.
        model.prune_intermediate_layers(
            [max(self.block_indices)], prune_norm=not norm, prune_head=True
        )
        self.model = model
        if frozen:
            self.model.requires_grad_(False)
            self.model.eval()

    @property
    def out_channels(self) -> list[int]:
        """Channels of each returned map (the embedding width)."""
        return [int(self.model.embed_dim)] * len(self.block_indices)

    @property
    def reductions(self) -> list[int]:
        """Stride of each returned map relative to the input (the patch size)."""
        return [int(self.model.patch_embed.patch_size[0])] * len(self.block_indices)

    @property
    def num_prefix_tokens(self) -> int:
        """Class / distillation / register tokens before the patch tokens."""
        return int(getattr(self.model, "num_prefix_tokens", 0))

    def feature_shapes(self, input_size: int | Sequence[int]) -> list[tuple[int, int, int]]:
        """(C, h, w) of the returned map for an input of ``input_size`` (H, W), no forward.

        The patch embedding is a stride-``patch`` convolution without padding, so a
        border narrower than a patch is dropped (floor), unless timm pads the image
        (``dynamic_img_pad``: ceil).
        """
        h, w = size2(input_size)
        ph, pw = self.model.patch_embed.patch_size
        div = _ceil_div if getattr(self.model.patch_embed, "dynamic_img_pad", False) else _floor_div
        return [(self.out_channels[0], div(h, ph), div(w, pw))] * len(self.block_indices)

    def init_weights(self) -> None:
        """Weights are loaded in ``__init__``; mmengine's re-initialisation must not undo it."""

    def train(self, mode: bool = True) -> ViTTokenBackbone:
        super().train(mode)
        if self.frozen:
            self.model.eval()
        return self

    def _tokens(self, x: torch.Tensor) -> list[torch.Tensor]:
        with_prefix = self.prefix_tokens and self.num_prefix_tokens > 0
        # Only ViTs know return_prefix_tokens (CaiT's forward_intermediates does not).
        extra = dict(return_prefix_tokens=True) if with_prefix else {}
        outputs = self.model.forward_intermediates(
            x,
            indices=self.block_indices,
            norm=self.norm,
            stop_early=True,
            output_fmt="NLC" if self.prefix_tokens else "NCHW",
            intermediates_only=True,
            **extra,
        )
        # timm returns the blocks in ascending order; the config's order is kept.
        by_block = dict(zip(sorted(set(self.block_indices)), outputs))
        outputs = [by_block[i] for i in self.block_indices]
        if with_prefix:
            outputs = [torch.cat([prefix, patches], dim=1) for patches, prefix in outputs]
        return outputs

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> one (B, C, H / patch, W / patch) map per block, or with
        ``prefix_tokens`` one (B, P + h * w, C) token sequence per block."""
        if self.frozen:
            with torch.no_grad():
                return self._tokens(x)
        return self._tokens(x)
