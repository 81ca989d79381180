# CFlow (Gudovskiy et al. 2022) with the paper's WideResNet-50 setting: layers 2-4
# (strides 8, 16, 32), one conditional flow decoder per level of 8 AllInOneBlock couplings
# (fully connected subnets, soft permutations, clamp 1.9) conditioned on a 128-d 2D
# positional encoding; 256 px, batch 32; Adam lr 2e-4 with the official warm-up and cosine
# decay over 25 "meta epochs" of 8 sub-epochs (200 passes over the training set); the
# image batch (32) comes from the dataset base config.
# The paper's setting: the short model name (`adtool train <model>`) resolves here.
default = True
alias = ["cflow-wide_resnet50_2"]
_base_ = ["../_base_/datasets/mvtec.py", "../_base_/schedules/train.py"]

image_size = 256

model = dict(
    type="CFlow",
    data_preprocessor=dict(
        type="AnomalyDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
    ),
    backbone=dict(
        type="TimmBackbone",
        arch="wide_resnet50_2.tv_in1k",
        out_indices=(2, 3, 4),
        frozen=True,
        weights="imagenet",
    ),
    coupling_blocks=8,
    condition_dim=128,
    clamp=1.9,
    max_fibers=None,
)


optim_wrapper = dict(optimizer=dict(type="Adam", lr=2e-4))
# Official schedule: 2 of 25 meta epochs of warm-up from lr / 10, then cosine decay to
# lr * 0.1^3; a meta epoch is 8 passes over the data.
param_scheduler = [
    dict(type="LinearLR", start_factor=0.1, end_factor=1.0, begin=0, end=16, by_epoch=True),
    dict(type="CosineAnnealingLR", T_max=184, eta_min=2e-7, begin=16, end=200, by_epoch=True),
]
train_cfg = dict(max_epochs=200, val_interval=8)

# Read only by tests/apis/test_integration.py, never by a run: what its tiny run needs
# beyond the generic shrink (random weights, 64 px, 4-image batches, generated data).
# ResNet-18 layers 2-4 (128/256/512 channels) stand in for WideResNet-50 (512/1024/2048:
# 82M trainable decoder parameters) and 2 couplings for 8; no validation, no scheduler.
tiny_overrides = {
    "model.backbone.arch": "resnet18",
    "model.coupling_blocks": 2,
    "val_dataloader": None,
    "val_cfg": None,
    "val_evaluator": None,
    "param_scheduler": None,
}
