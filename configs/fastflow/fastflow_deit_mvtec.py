# FastFlow with DeiT-base-distilled at 384 px (paper): the patch tokens after block 7 (of
# 12) with DeiT's own final norm (no LayerNormNeck), class and distillation tokens dropped,
# a 768 x 24 x 24 map; 20 flow steps alternating 3x3 and 1x1, hidden ratio 0.16.
_base_ = ["../_base_/datasets/mvtec.py", "../_base_/schedules/train.py"]

# The original framework's name for this configuration (docs/api.md).
alias = ["fastflow-deit"]

image_size = 384

model = dict(
    type="FastFlow",
    data_preprocessor=dict(
        type="AnomalyDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
    ),
    backbone=dict(
        type="ViTTokenBackbone",
        arch="deit_base_distilled_patch16_384",
        block_index=7,
        norm=True,
        img_size=image_size,
        frozen=True,
        weights="imagenet",
    ),
    neck=None,
    head=dict(type="Flow2DHead", flow_steps=20, hidden_ratio=0.16, conv3x3_only=False, clamp=2.0),
    loss=dict(type="FlowNLLLoss"),
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

optim_wrapper = dict(optimizer=dict(type="Adam", lr=1e-3, weight_decay=1e-5))
train_cfg = dict(max_epochs=500, val_interval=10)

# Read only by tests/apis/test_integration.py, never by a run: what its tiny run needs
# beyond the generic shrink (random weights, 64 px, 4-image batches, generated data).
# A tiny DeiT of the same family, built for 64 px; the tokens of block 2 (of 12).
tiny_overrides = {
    "model.backbone.arch": "deit_tiny_distilled_patch16_224",
    "model.backbone.img_size": 64,
    "model.backbone.block_index": 2,
}
