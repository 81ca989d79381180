# CS-Flow + EfficientNet-Lite0 on the generated sample data (python tools/make_sample_data.py
# writes data/sample), sized for a CPU: the finest scale at 256 px (the images' own size),
# so the three scales 256, 128 and 64 px give 8x8, 4x4 and 2x2 maps of blocks.5 (192
# channels); subnets with 256 hidden channels instead of 1024 (a 0.17 GB flow at 1024);
# batch 8 (5 steps per epoch over the 40 training images), Adam 2e-4 as the paper but
# lr 1e-3, a fixed 30 epochs validated once at the end. Measured in configs/csflow/README.md.
_base_ = "./csflow_effnetlite0_mvtec.py"

image_size = 256
data_root = "data/sample"
category = "disk"

model = dict(input_size=image_size, hidden_channels=256)

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
train_cfg = dict(max_epochs=30, val_interval=30)

# Read only by tests/apis/test_integration.py: narrow subnets, validated once.
tiny_overrides = {"_delete_": True, "model.hidden_channels": 16}
