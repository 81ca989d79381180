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

# Read only by tests/apis/test_integration.py: 56 px (a multiple of the patch size 14)
# instead of the generic 64 px, plus the base config's shrink.
tiny_overrides = {
    "train_dataloader.dataset.pipeline.1.size": 56,
    "test_dataloader.dataset.pipeline.2.size": 56,
}
