# CFlow + EfficientNet-Lite0 on the generated sample data (python tools/make_sample_data.py
# writes data/sample), sized for a CPU: 128 px images (decoders on 16x16, 8x8 and 4x4
# maps), batch 4 (10 steps per epoch over the 40 training images), Adam lr 1e-3 without
# the warm-up/cosine schedule (a step sees every fibre of the batch, so there are far fewer
# steps than in the paper's loop over fibre batches of 64), at most 40 epochs, validated
# every epoch and stopped when the validation image AUROC has not risen by 0.005 for 5
# epochs. Measured in configs/cflow/README.md.
_base_ = "./cflow_effnetlite0_mvtec.py"

image_size = 128
data_root = "data/sample"
category = "disk"

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
    batch_size=8,
    dataset=dict(
        type="SampleDataset", data_root=data_root, category=category, pipeline=test_pipeline
    ),
)
val_dataloader = test_dataloader

optim_wrapper = dict(optimizer=dict(type="Adam", lr=1e-3))
param_scheduler = None
train_cfg = dict(max_epochs=40, val_interval=1)
custom_hooks = [
    dict(type="RichProgressHook"),
    dict(
        type="EarlyStoppingHook",
        monitor="image_AUROC",
        rule="greater",
        min_delta=0.005,
        patience=5,
    ),
]
# Read only by tests/apis/test_integration.py: the generic shrink suffices (the base
# config's ResNet-18 stand-in is dropped).
tiny_overrides = {"_delete_": True}
