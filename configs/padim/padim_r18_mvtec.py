# PaDiM (Defard et al., ICPR 2020) with the paper's ResNet-18 setting: layers 1-3
# (64+128+256 = 448 channels) at the layer-1 grid, a random subset of 100 channels, a
# Gaussian per position (covariance + 0.01 I), Mahalanobis map blurred with sigma 4,
# 256 px resized and centre-cropped to 224.
_base_ = [
    "../_base_/datasets/mvtec_crop224.py",
    "../_base_/default_runtime.py",
    "../_base_/schedules/fit.py",
]

# The original framework's name for this configuration (docs/api.md).
alias = ["padim-resnet18"]

model = dict(
    type="PaDiM",
    data_preprocessor=dict(
        type="AnomalyDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
    ),
    backbone=dict(
        type="TimmBackbone",
        arch="resnet18.tv_in1k",
        out_indices=(1, 2, 3),
        frozen=True,
        weights="imagenet",
    ),
    # in_channels is taken from the backbone.
    neck=dict(type="ChannelSubsetNeck", num_channels=100, seed=0, upsample_mode="nearest"),
    head=dict(type="GaussianHead", reg=0.01),
    blur_sigma=4.0,
)

train_dataloader = dict(batch_size=8)
test_dataloader = dict(batch_size=8)
val_dataloader = None
val_evaluator = None
