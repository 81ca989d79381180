# Dinomaly ViT-B/14 at 392 px (resized, no crop: 28 x 28 tokens); otherwise the
# paper's setting (dinomaly_vit-b14-reg4_448_mvtec.py: 448 px centre-cropped to 392).
_base_ = "./dinomaly_vit-b14-reg4_448_mvtec.py"
# The original framework's name for this configuration (docs/api.md).
alias = ["dinomaly-base-392"]

image_size = 392
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
