# EfficientAD-S (Batzner et al., WACV 2024) with the paper's setting: PDN-small teacher
# (384 channels, frozen, distilled from a pretrained network), student PDN with 768
# channels, autoencoder; hard-feature loss q=0.999, pretraining penalty on natural images,
# Adam lr 1e-4 weight decay 1e-5, batch 1, 70 000 steps with lr x0.1 after 95 %, 256 px;
# maps normalised by the 0.9 / 0.995 quantiles of 10 % of the training images held out.
# Teacher: backbones/pdn_small_effnetlite0.pth (tools/distill_teacher.py makes it offline;
# the paper distils WideResNet-101). Penalty images: data/imagenette (any natural images;
# when absent the penalty is off and the log and results.json's model_info say so).
# The paper's setting: the short model name (`adtool train efficientad`) resolves here.
default = True
alias = ["efficientad-small"]
_base_ = ["../_base_/datasets/mvtec.py", "../_base_/default_runtime.py"]

model = dict(
    type="EfficientAD",
    data_preprocessor=dict(
        type="AnomalyDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
    ),
    teacher=dict(
        type="PDNBackbone", size="small", out_channels=384, width=1.0, weights="effnetlite0"
    ),
    input_size=256,
    hard_quantile=0.999,
    penalty_dir="data/imagenette",
    penalty_weight=1.0,
    validation_fraction=0.1,
    map_quantiles=(0.9, 0.995),
    width=1.0,
)

# Steps, not epochs: one Adam step per training image (batch 1). No validation on the
# test split during training: the quantiles come from the held-out training images.
# InfiniteSampler: the step loop draws images without restarting the loader each pass.
train_dataloader = dict(batch_size=1, sampler=dict(type="InfiniteSampler", shuffle=True))
test_dataloader = dict(batch_size=1)
val_dataloader = None
val_cfg = None
val_evaluator = None
train_cfg = dict(type="IterBasedTrainLoop", max_iters=70000)
test_cfg = dict(type="TestLoop")
optim_wrapper = dict(optimizer=dict(type="Adam", lr=1e-4, weight_decay=1e-5))
# lr x0.1 after 95 % of the steps; change the milestone with train_cfg.max_iters.
param_scheduler = dict(type="MultiStepLR", by_epoch=False, milestones=[66500], gamma=0.1)
default_hooks = dict(
    logger=dict(type="LoggerHook", interval=500),
    checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=10000, max_keep_ckpts=1),
)
log_processor = dict(by_epoch=False)

tiny_overrides = {
    "train_cfg.max_iters": 2,
    "param_scheduler.milestones": [1],
    "model.width": 0.25,
    "model.teacher.width": 0.25,
}
