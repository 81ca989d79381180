# U-Flow + EfficientNet-Lite0 on the generated sample data (python tools/make_sample_data.py
# writes data/sample), sized for a CPU: 128 px images (the U-shaped flow on 32x32, 16x16
# and 8x8 maps), batch 4 (10 Adam steps per epoch over the 40 training images), Adam lr
# 1e-3 without the slow linear decay, at most 40 epochs, validated every epoch and stopped
# when the validation image AUROC has not risen by 0.005 for 5 epochs. The NFA threshold
# is the paper's (7x7 window, q = 0.5, epsilon = 1). Measured in configs/uflow/README.md.
_base_ = "./uflow_effnetlite0_mvtec.py"

image_size = 128
data_root = "data/sample"
category = "disk"

model = dict(input_size=image_size)

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
