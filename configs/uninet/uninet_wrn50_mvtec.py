# UniNet (Wei et al., CVPR 2025) with the paper's setting: WideResNet-50 layers 1-3 as
# the source teacher (frozen) and the target teacher (a copy, fine-tuned at lr 1e-6),
# attention bottleneck (multi-scale fusion + 3 attention blocks -> 2048 channels),
# de-WideResNet student (3/4/6 blocks), domain-related feature selection, loss = 0.7
# cosine + 0.3 similarity-contrastive (temperature 0.1) + margin; weighted decision
# mechanism (alpha 0.01, beta 3e-5) for the score; AdamW lr 5e-3, betas (0.9, 0.999),
# weight decay 1e-5, x0.2 at 80% of training; batch 8, 100 epochs, 256 px.
# The paper's setting: the short model name (`adtool train <model>`) resolves here.
default = True
# The original framework's name for this configuration (docs/api.md).
alias = ["uninet-wide_resnet50_2"]
_base_ = ["../_base_/datasets/mvtec.py", "../_base_/schedules/train.py"]

model = dict(
    type="UniNet",
    data_preprocessor=dict(
        type="AnomalyDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
    ),
    # Built twice: the frozen source teacher and the trained target teacher.
    backbone=dict(
        type="TimmBackbone",
        arch="wide_resnet50_2.tv_in1k",
        out_indices=(1, 2, 3),
        weights="imagenet",
    ),
    # Channel widths and strides come from the backbone.
    neck=dict(type="AttentionBottleneckNeck", num_blocks=3, width_ratio=0.25, large_kernel=7),
    decoder=dict(
        type="ReverseDecoder",
        num_blocks=(3, 4, 6),
        block="bottleneck",
        width_ratio=0.5,
        relu_out=True,
    ),
    loss=dict(type="UniNetLoss", temperature=0.1, lambda_weight=0.7, margin=1.0),
    feature_selection=True,
    alpha=0.01,
    beta=3e-5,
    score="weighted",
    blur_sigma=4.0,
)

# One AdamW, two learning rates: 5e-3 for the bottleneck, student and feature selection,
# 1e-6 (= 5e-3 x 2e-4) for the target teacher, as the official code's two optimisers.
optim_wrapper = dict(
    optimizer=dict(type="AdamW", lr=5e-3, betas=(0.9, 0.999), weight_decay=1e-5),
    paramwise_cfg=dict(custom_keys={"target_teacher": dict(lr_mult=2e-4)}),
)
train_cfg = dict(max_epochs=100)
param_scheduler = [dict(type="MultiStepLR", by_epoch=True, milestones=[80], gamma=0.2)]
train_dataloader = dict(batch_size=8)
test_dataloader = dict(batch_size=8)
val_dataloader = test_dataloader

# Read only by tests/apis/test_integration.py, never by a run: what its tiny run needs
# beyond the generic shrink (random weights, 64 px, 4-image batches, generated data).
# Two WideResNet-50 teachers train at ~3 s per 64 px image on one CPU thread: the tiny
# run uses ResNet-18 teachers (same family, random weights either way) and one block per
# stage, without validation (a best checkpoint with AdamW's state would be ~1 GB).
tiny_overrides = {
    "model.backbone.arch": "resnet18",
    "model.neck.num_blocks": 1,
    "model.decoder.num_blocks": (1, 1, 1),
    "val_dataloader": None,
    "val_cfg": None,
    "val_evaluator": None,
}
