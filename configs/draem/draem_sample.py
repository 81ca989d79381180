# DRAEM on the generated sample data (python tools/make_sample_data.py writes data/sample):
# a short CPU run at 64 px with narrow networks (widths 16 / 16), Adam 1e-3, 40 epochs with
# the paper's x0.2 decays at 80% and 90%, batch 8, 9x9 mean filter for the image score,
# torch's default weight initialisation (configs/draem/README.md has the measurements behind
# these choices).
_base_ = "./draem_mvtec.py"

data_root = "data/sample"
category = "disk"
image_size = 64
texture_dir = "data/dtd"

train_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="Resize", size=image_size),
    dict(type="PerlinAnomalyMask", prob=0.5, threshold=0.5, max_scale=6, max_rotation=90.0),
    dict(type="TextureAnomalyBlend", texture_dir=texture_dir, beta_range=(0.1, 1.0)),
    dict(type="PackAnomalyInputs", image_keys=["img_clean"]),
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

# torch's default initialisation: with the official N(0, 0.02) one, 40 epochs reached only
# image / pixel AUROC 0.62 / 0.73 on disk (README).
model = dict(
    reconstructive_width=16, discriminative_width=16, score_kernel=9, weight_init="pytorch"
)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
max_epochs = 40
param_scheduler = dict(milestones=[32, 36])
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)

tiny_overrides = {
    "model.reconstructive_width": 4,
    "model.discriminative_width": 4,
    "model.score_kernel": 5,
}
