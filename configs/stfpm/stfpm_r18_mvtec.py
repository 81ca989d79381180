# STFPM (Wang et al., BMVC 2021) with the paper's setting: ResNet-18 layers 1-3 as teacher
# (torchvision's ImageNet weights, frozen) and student (random init), per-position loss on
# channel-normalised features, product of the per-level maps; SGD lr 0.4, momentum 0.9, weight decay 1e-4,
# batch 32, 100 epochs, 256 px.
# The paper's setting: the short model name (`adtool train <model>`) resolves here.
default = True
# The original framework's name for this configuration (docs/api.md).
alias = ["stfpm-resnet18"]
_base_ = ["../_base_/datasets/mvtec.py", "../_base_/schedules/train.py"]

model = dict(
    type="STFPM",
    data_preprocessor=dict(
        type="AnomalyDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
    ),
    teacher=dict(
        type="TimmBackbone",
        arch="resnet18.tv_in1k",
        out_indices=(1, 2, 3),
        frozen=True,
        weights="imagenet",
    ),
    # The official code's student is a plain torchvision ResNet-18: every BN starts at
    # weight 1, where timm zero-initialises the last BN of each residual block.
    student=dict(
        type="TimmBackbone",
        arch="resnet18.tv_in1k",
        out_indices=(1, 2, 3),
        frozen=False,
        weights=None,
        model_kwargs=dict(zero_init_last=False),
    ),
    head=dict(type="FeatureDistanceHead", distance="l2_normalized", fusion="product"),
    # Per position, 1/2 ||t - s||^2 of normalised features = 1 - cos; the official code
    # (whose lr 0.4 is the paper's) sums ||t - s||^2 without the 1/2: loss_weight=2.0.
    loss=dict(type="CosineFeatureLoss", flatten=False, loss_weight=2.0),
    blur_sigma=0.0,
)

optim_wrapper = dict(optimizer=dict(type="SGD", lr=0.4, momentum=0.9, weight_decay=1e-4))
train_cfg = dict(max_epochs=100)
train_dataloader = dict(batch_size=32)
