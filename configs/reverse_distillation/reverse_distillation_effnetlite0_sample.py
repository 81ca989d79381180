# Reverse Distillation + EfficientNet-Lite0 on the generated sample data
# (python tools/make_sample_data.py writes data/sample): a short CPU run at the paper's
# 256 px and blur sigma 4, batch 4 (10 updates per epoch of 40 images instead of 3) and a
# fixed 20 epochs (the paper: 200). No early stopping: validation image AUROC swings by
# +-0.1 between epochs on disk and tiles before it settles, which stopped 128 px runs at
# 0.71 / 0.77 (configs/reverse_distillation/README.md).
_base_ = "./reverse_distillation_effnetlite0_mvtec.py"

data_root = "data/sample"
category = "disk"
image_size = 256

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
val_dataloader = test_dataloader

train_cfg = dict(max_epochs=20)
custom_hooks = [dict(type="RichProgressHook")]
