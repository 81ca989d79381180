# Reverse Distillation (Deng & Li, CVPR 2022) with the paper's setting: WideResNet-50
# layers 1-3 as the frozen encoder, one-class bottleneck (multi-scale fusion + 3
# bottleneck blocks -> 2048 channels), de-WideResNet decoder (3/4/6 blocks), loss
# 1 - cosine per image and level as the official code, map = sum of the per-level
# 1 - cosine maps with Gaussian blur sigma 4; Adam lr 0.005, betas (0.5, 0.999), batch 16,
# 200 epochs, 256 px.
# The paper's setting: the short model name (`adtool train <model>`) resolves here.
default = True
# The original framework's name for this configuration (docs/api.md).
alias = ["reverse_distillation-wide_resnet50_2"]
_base_ = ["../_base_/datasets/mvtec.py", "../_base_/schedules/train.py"]

model = dict(
    type="ReverseDistillation",
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
    # Channel widths and strides come from the backbone.
    neck=dict(type="OCBENeck", num_blocks=3, block="bottleneck", width_ratio=0.5),
    decoder=dict(
        type="ReverseDecoder",
        num_blocks=(3, 4, 6),
        block="bottleneck",
        width_ratio=0.5,
        relu_out=True,
    ),
    head=dict(type="FeatureDistanceHead", distance="cosine", fusion="sum"),
    # flatten=True: one cosine per image and level, as the official code (view(B, -1));
    # flatten=False is the per-position form of the paper's Eq. 2.
    loss=dict(type="CosineFeatureLoss", flatten=True),
    blur_sigma=4.0,
)

optim_wrapper = dict(optimizer=dict(type="Adam", lr=0.005, betas=(0.5, 0.999)))
# The official code (hq-deng/RD4AD) evaluates every 10 epochs.
train_cfg = dict(max_epochs=200, val_interval=10)
train_dataloader = dict(batch_size=16)
test_dataloader = dict(batch_size=16)
val_dataloader = test_dataloader

# Read only by tests/apis/test_integration.py, never by a run: what its tiny run needs
# beyond the generic shrink (random weights, 64 px, 4-image batches, generated data).
# No validation: a WideResNet-50 best checkpoint (with Adam's state) weighs 0.5-1 GB.
tiny_overrides = {"val_dataloader": None, "val_cfg": None, "val_evaluator": None}
