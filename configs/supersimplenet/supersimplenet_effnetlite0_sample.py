# SuperSimpleNet + EfficientNet-Lite0 on the generated sample data (python
# tools/make_sample_data.py writes data/sample): a short CPU run at 64 px (a 16 x 16
# feature grid), batch 8 (10 steps of 16 feature maps per epoch over the 40 images), a
# narrower head (segmentation 256, classification 32 channels), lr 1e-3 for the heads and
# 5e-4 for the adaptor (5x the paper's: 400 steps instead of its ~2400), x0.4 at 80% and
# 90% of 40 epochs, validated once at the end. Measured in configs/supersimplenet/README.md.
_base_ = "./supersimplenet_effnetlite0_mvtec.py"

data_root = "data/sample"
category = "disk"
image_size = 64

train_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="LoadAnomalyMask"),
    dict(type="Resize", size=image_size),
    dict(type="PackAnomalyInputs"),
]
test_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="LoadAnomalyMask"),
    dict(type="Resize", size=image_size),
    dict(type="PackAnomalyInputs"),
]
train_dataloader = dict(
    batch_size=8,
    dataset=dict(
        type="SampleDataset", data_root=data_root, category=category, pipeline=train_pipeline
    ),
)
test_dataloader = dict(
    batch_size=8,
    dataset=dict(
        type="SampleDataset", data_root=data_root, category=category, pipeline=test_pipeline
    ),
)
val_dataloader = test_dataloader

model = dict(head=dict(hidden_channels=256, cls_channels=32))
optim_wrapper = dict(optimizer=dict(lr=1e-3))
max_epochs = 40
param_scheduler = dict(milestones=[32, 36])
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
