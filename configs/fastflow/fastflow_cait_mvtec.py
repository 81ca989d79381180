# FastFlow with CaiT-M48 at 448 px (paper): the patch tokens after block 40 (of 48
# self-attention blocks; block index 40 in the paper's Table 6 and the official code) with
# CaiT's own final norm, a 768 x 28 x 28 map; 20 flow steps, hidden ratio 0.16.
_base_ = "./fastflow_deit_mvtec.py"

# The original framework's name for this configuration (docs/api.md).
alias = ["fastflow-cait"]

image_size = 448

model = dict(
    backbone=dict(arch="cait_m48_448", block_index=40, img_size=image_size),
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

# Read only by tests/apis/test_integration.py, never by a run: what its tiny run needs
# beyond the generic shrink (random weights, 64 px, 4-image batches, generated data).
# A tiny CaiT of the same family, built for 64 px; the tokens of block 2 (of 24).
tiny_overrides = {
    "model.backbone.arch": "cait_xxs24_224",
    "model.backbone.img_size": 64,
    "model.backbone.block_index": 2,
}
