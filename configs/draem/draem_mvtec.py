# DRAEM (Zavrtanik et al., ICCV 2021): reconstructive encoder-decoder (width 128) +
# discriminative U-Net (width 64) trained from scratch on Perlin-noise anomalies filled with
# DTD textures (beta in [0.1, 1], half the images left normal); L2 + SSIM (window 11) + focal
# (gamma 2) loss, Adam 1e-4 x0.2 at 80% and 90% of 700 epochs, batch 8, 256 px; map = softmax
# anomaly channel, score = max of its 21x21 mean. configs/draem/README.md lists the choices.
# The paper's setting: the short model name (`adtool train draem`) resolves here.
default = True
alias = ["draem"]
_base_ = ["../_base_/datasets/mvtec.py", "../_base_/schedules/train.py"]

image_size = 256
# Anomaly sources: DTD (https://www.robots.ox.ac.uk/~vgg/data/dtd/) unpacked so that its
# images are under this folder (any folder of images works); without it a procedural
# Perlin-noise texture is used and the log and results.json (model_info) say so.
texture_dir = "data/dtd"

train_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="Resize", size=image_size),
    # Half the images stay normal (official code); noise rotated by up to 90 degrees.
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
train_dataloader = dict(batch_size=8, dataset=dict(pipeline=train_pipeline))
test_dataloader = dict(batch_size=8, dataset=dict(pipeline=test_pipeline))
val_dataloader = test_dataloader

model = dict(
    type="DRAEM",
    # [0, 1], as the official code feeds its networks.
    data_preprocessor=dict(type="AnomalyDataPreprocessor", mean=[0.0, 0.0, 0.0], std=[255.0] * 3),
    reconstructive_width=128,
    discriminative_width=64,
    sspcab=False,
    loss_ssim=dict(type="SSIMLoss", window_size=11, max_val=1.0),
    loss_focal=dict(type="FocalLoss", gamma=2.0),
    score_kernel=21,
)

max_epochs = 700
optim_wrapper = dict(optimizer=dict(type="Adam", lr=1e-4))
param_scheduler = dict(type="MultiStepLR", by_epoch=True, milestones=[560, 630], gamma=0.2)
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)

tiny_overrides = {
    "model.reconstructive_width": 4,
    "model.discriminative_width": 4,
    "model.score_kernel": 5,
}
