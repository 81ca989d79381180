# U-Flow (Tailanian et al. 2022) with the paper's MS-CaiT extractor at 448 px: the normed
# patch tokens of CaiT-M48-448 after block 40 (768 x 28 x 28, stride 16) and of
# CaiT-S24-224 after block 20 on the image resized to 224 px (384 x 14 x 14, stride 32);
# the U-shaped flow: 4 AllInOneBlock couplings per stage (3x3 / 1x1 subnets in turn, hidden
# ratio 1.0, clamp 2.0, hard permutations), split + invertible upsampling from the coarse
# scale to the fine one; maximum likelihood; Adam lr 1e-3, weight decay 1e-5, the lr
# decayed linearly to 0.4x over 25000 iterations (official code, anomalib). The
# a-contrario threshold: a 7x7 window at the fine scale, q = 0.5, epsilon = 1.
# The paper's setting: the short model name (`adtool train uflow`) resolves here.
default = True
# The original framework's name for this configuration (docs/api.md).
alias = ["uflow-mcait"]
_base_ = ["../_base_/datasets/mvtec.py", "../_base_/schedules/train.py"]

image_size = 448

model = dict(
    type="UFlow",
    data_preprocessor=dict(
        type="AnomalyDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
    ),
    backbone=dict(
        type="MultiScaleViTBackbone",
        archs=("cait_m48_448", "cait_s24_224"),
        block_indices=(40, 20),
        scales=(1.0, 0.5),
        img_size=image_size,
        frozen=True,
        weights="imagenet",
    ),
    neck=None,
    head=dict(type="UShapedFlowHead", flow_steps=4, hidden_ratio=1.0, clamp=2.0),
    input_size=image_size,
    nfa_window_size=7,
    nfa_probability_thr=0.5,
    nfa_epsilon=1.0,
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
train_dataloader = dict(batch_size=8, dataset=dict(pipeline=train_pipeline))
test_dataloader = dict(batch_size=8, dataset=dict(pipeline=test_pipeline))
val_dataloader = test_dataloader

optim_wrapper = dict(optimizer=dict(type="Adam", lr=1e-3, weight_decay=1e-5))
param_scheduler = [
    dict(type="LinearLR", start_factor=1.0, end_factor=0.4, by_epoch=False, begin=0, end=25000)
]
train_cfg = dict(max_epochs=200, val_interval=10)

# Read only by tests/apis/test_integration.py, never by a run: what its tiny run needs
# beyond the generic shrink (random weights, 64 px, 4-image batches, generated data).
# Two tiny CaiTs of the same family (random weights), built for 64 and 32 px; the tokens
# of block 2 (of 24) of each; 2 couplings per stage.
tiny_overrides = {
    "model.backbone.archs": ("cait_xxs24_224", "cait_xxs24_224"),
    "model.backbone.block_indices": (2, 2),
    "model.backbone.img_size": 64,
    "model.head.flow_steps": 2,
}
