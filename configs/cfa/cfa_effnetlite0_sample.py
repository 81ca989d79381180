# CFA + EfficientNet-Lite0 on the generated sample data (python tools/make_sample_data.py
# writes data/sample): a short CPU run. Differs from the paper's setting where measured
# (configs/cfa/README.md): 128 px without crop (32 x 32 = 1024 centroids) and 10 epochs
# instead of 30.
_base_ = "./cfa_effnetlite0_mvtec.py"

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
    dataset=dict(
        type="SampleDataset", data_root=data_root, category=category, pipeline=train_pipeline
    ),
)
test_dataloader = dict(
    batch_size=16,
    dataset=dict(
        type="SampleDataset", data_root=data_root, category=category, pipeline=test_pipeline
    ),
)
val_dataloader = test_dataloader

train_cfg = dict(max_epochs=10)
