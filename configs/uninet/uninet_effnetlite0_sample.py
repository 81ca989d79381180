# UniNet + EfficientNet-Lite0 on the generated sample data
# (python tools/make_sample_data.py writes data/sample): a short CPU run at 128 px,
# batch 4 (10 updates per epoch of 40 images), a fixed 10 epochs with the learning rate
# x0.2 after epoch 8 (the paper's 80%); the paper trains 100 epochs at 256 px, batch 8.
_base_ = "./uninet_effnetlite0_mvtec.py"

data_root = "data/sample"
category = "disk"
image_size = 128

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
train_dataloader = dict(
    batch_size=4,
    dataset=dict(
        type="SampleDataset", data_root=data_root, category=category, pipeline=train_pipeline
    ),
)
test_dataloader = dict(
    dataset=dict(
        type="SampleDataset", data_root=data_root, category=category, pipeline=test_pipeline
    ),
)
# No validation after every epoch (it is a pass over the test split): the run tests
# once, at the end, with the last weights.
val_dataloader = None
val_cfg = None
val_evaluator = None

train_cfg = dict(max_epochs=10)
param_scheduler = [dict(type="MultiStepLR", by_epoch=True, milestones=[8], gamma=0.2)]
custom_hooks = [dict(type="RichProgressHook")]
# The generic shrink is enough (the paper config's ResNet-18 stand-in does not apply).
tiny_overrides = {"_delete_": True}
