# CS-Flow + EfficientNet-Lite0 on the generated sample data (python tools/make_sample_data.py
# writes data/sample), sized for a CPU: the finest scale at 128 px and the features of
# blocks.4 (112 channels, stride 16) instead of blocks.5 (stride 32), so the three scales
# 128, 64 and 32 px still give 8x8, 4x4 and 2x2 maps; subnets with 64 hidden channels
# instead of 1024; batch 8 (5 steps per epoch over the 40 training images), Adam lr 1e-3
# instead of 2e-4 (50 steps instead of the paper's thousands), a fixed 10 epochs validated
# once at the end. Measured in configs/csflow/README.md.
_base_ = "./csflow_effnetlite0_mvtec.py"

image_size = 128
data_root = "data/sample"
category = "disk"

model = dict(input_size=image_size, backbone=dict(stage=4), hidden_channels=64)

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

optim_wrapper = dict(optimizer=dict(lr=1e-3))
train_cfg = dict(max_epochs=10, val_interval=10)

# Read only by tests/apis/test_integration.py: narrow subnets, validated once.
tiny_overrides = {"_delete_": True, "model.hidden_channels": 16}
