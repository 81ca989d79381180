"""Backbones report their feature shapes without a forward; one helper fills parts from them."""

import pytest
import torch

from adtool.models.backbones import TimmBackbone, ViTTokenBackbone
from adtool.models.backbones.feature_info import fill_from_backbone


@pytest.mark.parametrize(
    ("arch", "out_indices"),
    [("resnet18", (1, 2, 3)), ("tf_efficientnet_lite0", (1, 2, 3)), ("resnet18", (2, 3, 4))],
)
def test_feature_shapes_match_a_forward_without_running_one(arch, out_indices):
    backbone = TimmBackbone(arch, out_indices=out_indices, weights=None).eval()
    # Odd and non-square sizes: padded stride-2 stages round up (ceil), not down.
    for size in [(64, 64), (65, 67), (33, 50), (31, 31), (97, 45)]:
        with torch.no_grad():
            real = [tuple(f.shape[1:]) for f in backbone(torch.zeros(1, 3, *size))]
        assert backbone.feature_shapes(size) == real, size
    assert backbone.out_channels == [c for c, _, _ in backbone.feature_shapes(64)]
    assert backbone.feature_shapes(65)[0][1:] == (-(-65 // backbone.reductions[0]),) * 2
    # The helper fills what a config leaves unset and keeps what it gives.
    filled = fill_from_backbone(
        dict(type="OCBENeck"), backbone, in_channels="out_channels", reductions="reductions"
    )
    assert filled["in_channels"] == backbone.out_channels
    assert filled["reductions"] == backbone.reductions
    kept = fill_from_backbone(
        dict(type="OCBENeck", in_channels=[1, 2, 3]), backbone, in_channels="out_channels"
    )
    assert kept["in_channels"] == [1, 2, 3]
    # A key the component does not take is not added (AvgPoolNeck has no in_channels).
    assert "in_channels" not in fill_from_backbone(
        dict(type="AvgPoolNeck"), backbone, in_channels="out_channels"
    )


@pytest.mark.parametrize(
    ("pad", "sizes"),
    [(False, [(64, 64), (80, 48)]), (True, [(64, 64), (70, 90), (47, 33)])],
)
def test_vit_token_feature_shapes_match_a_forward(pad, sizes):
    backbone = ViTTokenBackbone(
        "deit_tiny_distilled_patch16_224",
        block_index=1,
        img_size=64,
        weights=None,
        model_kwargs=dict(dynamic_img_size=True, dynamic_img_pad=pad),
    )
    for size in sizes:
        with torch.no_grad():
            real = [tuple(f.shape[1:]) for f in backbone(torch.zeros(1, 3, *size))]
        assert backbone.feature_shapes(size) == real, size
    assert backbone.out_channels == [192] and backbone.reductions == [16]
