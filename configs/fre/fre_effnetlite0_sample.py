# FRE + EfficientNet-Lite0 on the generated sample data (python tools/make_sample_data.py
# writes data/sample), sized for a CPU: 128 px (stage 3: 8 x 8 pooled by 2 -> 4 x 4 grid,
# 1792-d vectors), batch 4 (10 Adam steps per epoch over the 40 training images), 20
# epochs instead of the paper's 220 (on the sample data the validation AUROCs at epochs
# 20, 40 and 60 were within 0.01 of each other; configs/fre/README.md), validated (and
# checkpointed) every 10 epochs.
_base_ = "./fre_effnetlite0_mvtec.py"

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

train_cfg = dict(max_epochs=20, val_interval=10)
default_hooks = dict(checkpoint=dict(interval=10))

tiny_overrides = {"model.head.latent_dim": 32}
