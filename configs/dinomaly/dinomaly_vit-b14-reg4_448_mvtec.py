# Dinomaly (Guo et al., CVPR 2025) with the paper's setting: a frozen DINOv2-with-registers
# ViT-B/14 encoder (timm vit_base_patch14_reg4_dinov2, weights from backbones/), the token
# sequences of blocks 2-9 (class and register tokens included), their mean through the
# noisy bottleneck (MLP, dropout 0.2 on its input, hidden layer and output), an 8-block
# linear-attention decoder; two groups (blocks 2-5 and 6-9, the decoder's in reverse)
# compared by the loose group-wise global cosine loss with hard mining (p 0.9 after a
# 1000-iteration ramp, gradient factor 0.1); StableAdamW lr 2e-3 (betas 0.9 / 0.999,
# weight decay 1e-4, AMSGrad, eps 1e-10), 100 warm-up iterations then cosine to 2e-4,
# gradient norm clipped at 0.1, 5000 iterations of batch 16; 448 px images centre-cropped
# to 392 (28 x 28 tokens); map = sum over the groups of 1 - cosine, Gaussian blur sigma 4;
# image score = mean of the top 1 % of the map.
# Multi-class is the paper's protocol: one model for every category, tested per category:
#   python tools/train.py dinomaly --category all        (multi_class = True below)
# The position embedding is interpolated to the input grid at every forward
# (dynamic_img_size), as DINOv2 does, so one encoder config fits every resolution.
# The paper's setting: the short model name (`adtool train <model>`) resolves here.
default = True
# The original framework's name for this configuration (docs/api.md).
alias = ["dinomaly-base-448"]
_base_ = ["../_base_/datasets/mvtec.py", "../_base_/schedules/train.py"]

multi_class = True
image_size = 448
crop_size = 392
max_iters = 5000

model = dict(
    type="Dinomaly",
    data_preprocessor=dict(
        type="AnomalyDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
    ),
    backbone=dict(
        type="ViTTokenBackbone",
        arch="vit_base_patch14_reg4_dinov2",
        block_indices=[2, 3, 4, 5, 6, 7, 8, 9],
        prefix_tokens=True,
        norm=False,
        frozen=True,
        weights="imagenet",
        model_kwargs=dict(dynamic_img_size=True),
    ),
    # Widths (and the decoder's heads) come from the encoder.
    neck=dict(type="NoisyBottleneck", hidden_ratio=4.0, dropout=0.2),
    decoder=dict(type="LinearAttentionDecoder", depth=8, mlp_ratio=4.0),
    head=dict(type="FeatureDistanceHead", distance="cosine", fusion="sum"),
    loss=dict(type="LooseCosineLoss", p_final=0.9, factor=0.1, warmup_iters=1000),
    groups=[[0, 1, 2, 3], [4, 5, 6, 7]],
    blur_sigma=4.0,
    max_ratio=0.01,
)

train_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="Resize", size=image_size),
    dict(type="CenterCrop", size=crop_size),
    dict(type="PackAnomalyInputs"),
]
test_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="LoadAnomalyMask"),
    dict(type="Resize", size=image_size),
    dict(type="CenterCrop", size=crop_size),
    dict(type="PackAnomalyInputs"),
]
# An endless sampler: the iteration loop never runs out of a (reshuffled) training set.
train_dataloader = dict(
    batch_size=16,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    dataset=dict(pipeline=train_pipeline),
)
test_dataloader = dict(batch_size=16, dataset=dict(pipeline=test_pipeline))
# No validation during training: the paper tests the last weights (run_category does).
val_dataloader = None
val_cfg = None
val_evaluator = None

# The paper counts iterations: mmengine's iteration loop, schedules and checkpoints.
train_cfg = dict(_delete_=True, type="IterBasedTrainLoop", max_iters=max_iters)
optim_wrapper = dict(
    optimizer=dict(
        type="StableAdamW", lr=2e-3, betas=(0.9, 0.999), weight_decay=1e-4, amsgrad=True, eps=1e-10
    ),
    clip_grad=dict(max_norm=0.1),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=1e-3, by_epoch=False, begin=0, end=100),
    dict(
        type="CosineAnnealingLR",
        by_epoch=False,
        begin=100,
        end=max_iters,
        T_max=max_iters - 100,
        eta_min=2e-4,
    ),
]
default_hooks = dict(
    checkpoint=dict(by_epoch=False, interval=max_iters, save_best=None),
    logger=dict(interval=50),
)
log_processor = dict(by_epoch=False)

# Read only by tests/apis/test_integration.py, never by a run: what its tiny run needs
# beyond the generic shrink (random weights, 64 px, 4-image batches, generated data).
# A few iterations instead of 5000, with the ViT-S/14 of the same family (56 px: 4 x 4
# tokens) so that each of the 9 grid configs runs in seconds.
tiny_overrides = {"train_cfg.max_iters": 4, "model.backbone.arch": "vit_small_patch14_reg4_dinov2"}
