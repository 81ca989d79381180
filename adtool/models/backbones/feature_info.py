"""Fill the channel and shape settings of necks and heads from their backbone.

A backbone reports what it returns without running an image: ``out_channels`` (one int
per level), ``reductions`` (each level's stride) and ``feature_shapes(input_size)`` (each
level's (C, H, W)). Methods use :func:`fill_from_backbone` to hand these to the parts
built after the backbone, so a config names the backbone once and its necks and heads
follow any architecture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from adtool.errors import ConfigError
from adtool.registry import MODELS, accepted_keys

#: Backbone quantities a key of :func:`fill_from_backbone` may name.
BACKBONE_FIELDS = ("out_channels", "reductions", "feature_shapes")


def size2(size: int | Sequence[int]) -> tuple[int, int]:
    """(H, W) from a side or an (H, W) pair."""
    if isinstance(size, int):
        return (size, size)
    h, w = size
    return (int(h), int(w))


def conv_feature_shapes(
    channels: Sequence[int], reductions: Sequence[int], input_size: int | Sequence[int]
) -> list[tuple[int, int, int]]:
    """(C, H, W) of each level of a CNN whose stride-s stages give ``ceil(size / s)``.

    A stride-2 convolution or pooling padded as ResNets and TF-"same" EfficientNets are
    (kernel k, padding (k - 1) / 2) maps n pixels to ceil(n / 2), and repeated halving
    rounds up the same way, so a level of stride s has ceil(H / s) x ceil(W / s) positions.
    """
    h, w = size2(input_size)
    return [(int(c), math.ceil(h / r), math.ceil(w / r)) for c, r in zip(channels, reductions)]


def _takes(cfg: dict, key: str) -> bool:
    """True when the component ``cfg`` builds accepts ``key`` (or we cannot tell)."""
    obj_type = cfg.get("type")
    obj_cls = MODELS.get(obj_type) if isinstance(obj_type, str) else obj_type
    if obj_cls is None:
        return True  # the build will report the unknown type
    valid = accepted_keys(obj_cls)
    return valid is None or key in valid


def fill_from_backbone(
    cfg: dict, backbone, *, input_size: int | Sequence[int] | None = None, **keys
) -> dict:
    """A copy of ``cfg`` with unset channel / shape keys filled from ``backbone``.

    A key is filled when the config leaves it out (or None) and the component's class
    accepts it; a value the config gives wins.

    Args:
        cfg: Config of the neck or head.
        backbone: A built backbone with ``out_channels``, ``reductions`` and
            ``feature_shapes(input_size)``.
        input_size: (H, W) or side of the model's input; needed for
            ``'feature_shapes'``. Defaults to None.
        **keys: Config key -> one of :data:`BACKBONE_FIELDS` (read from the backbone),
            or any other value (used as is, e.g. the width of a neck built earlier).

    Returns:
        The filled copy.

    Example:
        >>> fill_from_backbone(dict(type='ChannelSubsetNeck', num_channels=100), backbone,
        ...                    in_channels='out_channels')
    """
    cfg = dict(cfg)
    for key, source in keys.items():
        if cfg.get(key) is not None or not _takes(cfg, key):
            continue
        cfg[key] = _read(backbone, source, input_size) if _is_field(source) else source
    return cfg


def backbone_feature_shapes(
    backbone, input_size: int | Sequence[int]
) -> list[tuple[int, int, int]]:
    """(C, H, W) of each level ``backbone`` returns for ``input_size``, without a forward."""
    return _read(backbone, "feature_shapes", input_size)


def _is_field(source) -> bool:
    return isinstance(source, str) and source in BACKBONE_FIELDS


def _read(backbone, field: str, input_size):
    if not hasattr(backbone, field):
        raise ConfigError(
            f"{type(backbone).__name__} does not report its {field}; use a backbone that does "
            "(TimmBackbone, ViTTokenBackbone) or set the key in the config"
        )
    if field == "feature_shapes":
        if input_size is None:
            raise ValueError("fill_from_backbone needs input_size to fill feature_shapes")
        return [tuple(int(v) for v in s) for s in backbone.feature_shapes(size2(input_size))]
    return [int(v) for v in getattr(backbone, field)]
