# FastFlow (Yu et al. 2021) with the paper's WideResNet-50 setting: layers 1-3 (strides 4,
# 8, 16), a trainable LayerNorm per level, 8 flow steps alternating 3x3 and 1x1 subnets,
# hidden ratio 1.0, affine clamp 2.0; 256 px; Adam lr 1e-3, weight decay 1e-5, batch 32,
# 500 epochs (validated every 10 epochs, as the official code evaluates).
# The paper's setting: the short model name (`adtool train <model>`) resolves here.
default = True
# The original framework's name for this configuration (docs/api.md).
alias = ["fastflow-wide_resnet50_2"]
_base_ = ["../_base_/datasets/mvtec.py", "../_base_/schedules/train.py"]

image_size = 256

model = dict(
    type="FastFlow",
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
    neck=dict(type="LayerNormNeck"),
    head=dict(type="Flow2DHead", flow_steps=8, hidden_ratio=1.0, conv3x3_only=False, clamp=2.0),
    loss=dict(type="FlowNLLLoss"),
    input_size=image_size,
)

optim_wrapper = dict(optimizer=dict(type="Adam", lr=1e-3, weight_decay=1e-5))
train_cfg = dict(max_epochs=500, val_interval=10)

# Read only by tests/apis/test_integration.py, never by a run: what its tiny run needs
# beyond the generic shrink (random weights, 64 px, 4-image batches, generated data).
# No validation: a WideResNet-50 best checkpoint (with Adam's state) weighs 0.5-1 GB.
tiny_overrides = {"val_dataloader": None, "val_cfg": None, "val_evaluator": None}
