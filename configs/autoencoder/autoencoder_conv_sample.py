# Convolutional autoencoder on the generated sample data (python tools/make_sample_data.py
# writes data/sample): a short CPU run at 64 px, 16 base channels, batch 8, lr 1e-3, 20 epochs,
# validated once at the end (configs/autoencoder/README.md has the measurements behind these
# choices).
_base_ = "./autoencoder_conv_mvtec.py"

data_root = "data/sample"
category = "disk"
image_size = 64

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
    dataset=dict(
        type="SampleDataset", data_root=data_root, category=category, pipeline=test_pipeline
    ),
)
val_dataloader = test_dataloader

model = dict(input_size=image_size, base_channels=16, blur_sigma=2.0)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
train_cfg = dict(max_epochs=20, val_interval=20)
