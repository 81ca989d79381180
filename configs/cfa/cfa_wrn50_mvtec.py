# CFA (Lee et al., IEEE Access 2022) with the paper's setting: WideResNet-50 layers 1-3
# (256+512+1024 = 1792 channels; torchvision's weights, frozen), 3x3-averaged and resized to
# the layer-1 grid, CoordConv 1x1 descriptor (gamma_d = 1), memory bank = per-position mean
# of the training descriptors (gamma_c = 1), soft-boundary loss with K = 3 nearest and
# J = 3 hard negatives, radius 1e-5 trained, alpha 0.1, nu 1e-3; AdamW lr 1e-3, weight
# decay 5e-4, amsgrad, batch 4, 30 epochs; map = softmin-weighted squared distance,
# blurred with sigma 4; 256 px resized and centre-cropped to 224 (the official code).
# The paper's setting: the short model name (`adtool train <model>`) resolves here.
default = True
# The original framework's name for this configuration (docs/api.md).
alias = ["cfa-wide_resnet50_2"]
_base_ = ["../_base_/datasets/mvtec_crop224.py", "../_base_/schedules/train.py"]

model = dict(
    type="CFA",
    data_preprocessor=dict(
        type="AnomalyDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
    ),
    backbone=dict(
        type="TimmBackbone",
        arch="wide_resnet50_2.tv_in1k",
        out_indices=(1, 2, 3),
        frozen=True,
        weights="imagenet",
    ),
    # in_channels is taken from the backbone.
    descriptor=dict(type="PatchDescriptor", gamma_d=1),
    loss=dict(type="CFALoss", num_nearest=3, num_hard_negatives=3, radius=1e-5),
    gamma_c=1,
    num_nearest=3,
    blur_sigma=4.0,
)

optim_wrapper = dict(
    optimizer=dict(type="AdamW", lr=1e-3, weight_decay=5e-4, amsgrad=True),
)
train_cfg = dict(max_epochs=30)
train_dataloader = dict(batch_size=4)
# A (batch x 3136 x 3136) distance block per test batch: keep batches small.
test_dataloader = dict(batch_size=8)
val_dataloader = test_dataloader

# Read only by tests/apis/test_integration.py, never by a run: what its tiny run needs
# beyond the generic shrink (random weights, 64 px, 4-image batches, generated data).
# No validation pass: a WideResNet-50 forward is the run's cost.
tiny_overrides = {"val_dataloader": None, "val_cfg": None, "val_evaluator": None}
