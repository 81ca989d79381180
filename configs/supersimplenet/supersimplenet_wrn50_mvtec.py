# SuperSimpleNet (Rolih et al., ICPR 2024) with the paper's unsupervised MVTec AD setting:
# frozen WideResNet-50 layers 2 + 3 (torchvision's ImageNet weights) upscaled to stride 4,
# concatenated, 3x3 local average; 1x1 adaptor; Gaussian noise (std 0.015) inside Perlin
# masks (threshold 0.2) at feature resolution, half the masks emptied, on a duplicated
# batch; segmentation head (1x1 1024, truncated L1 margin 0.5 + focal gamma 4) and
# classification head (5x5 conv 128, focal gamma 4), stop-gradient into the map; AdamW,
# adaptor lr 1e-4, heads lr 2e-4 (weight decay 1e-5), x0.4 at 80% and 90% of 300 epochs,
# batch 32, 256 px; map = segmentation logits upsampled + Gaussian blur sigma 4, score =
# sigmoid of the classification logit. configs/supersimplenet/README.md lists the choices.
# With labelled anomalous training images (Folder's abnormal_train_dir) it trains supervised.
# The paper's setting: the short model name (`adtool train supersimplenet`) resolves here.
default = True
alias = ["supersimplenet-wide_resnet50_2"]
_base_ = ["../_base_/datasets/mvtec.py", "../_base_/schedules/train.py"]

image_size = 256
# Masks are read for the training images too: the targets of labelled anomalous images in
# the supervised mode (normal images get an all-zero mask).
train_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="LoadAnomalyMask"),
    dict(type="Resize", size=image_size),
    dict(type="PackAnomalyInputs"),
]
train_dataloader = dict(batch_size=32, dataset=dict(pipeline=train_pipeline))

model = dict(
    type="SuperSimpleNet",
    data_preprocessor=dict(
        type="AnomalyDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
    ),
    backbone=dict(
        type="TimmBackbone",
        arch="wide_resnet50_2.tv_in1k",
        out_indices=(2, 3),
        frozen=True,
        weights="imagenet",
    ),
    neck=dict(type="UpscaleConcatNeck", scale=2, kernel_size=3),
    head=dict(
        type="SegDetHead", hidden_channels=1024, cls_channels=128, cls_kernel=5, stop_grad=True
    ),
    generator=dict(
        noise_std=0.015, threshold=0.2, min_scale=0, max_scale=6, empty_prob=0.5, overlap=True
    ),
    loss_focal=dict(type="FocalLoss", use_sigmoid=True, gamma=4.0),
    l1_margin=0.5,
    blur_sigma=4.0,
)

max_epochs = 300
# Heads: lr 2e-4, weight decay 1e-5; the adaptor: lr 1e-4 with AdamW's default decay 1e-2.
optim_wrapper = dict(
    optimizer=dict(type="AdamW", lr=2e-4, weight_decay=1e-5),
    paramwise_cfg=dict(custom_keys={"adaptor": dict(lr_mult=0.5, decay_mult=1000.0)}),
)
param_scheduler = dict(type="MultiStepLR", by_epoch=True, milestones=[240, 270], gamma=0.4)
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)

# Read only by tests/apis/test_integration.py: ResNet-18 layers 2-3 stand in for
# WideResNet-50 (random weights either way), no validation, no scheduler.
tiny_overrides = {
    "model.backbone.arch": "resnet18.tv_in1k",
    "model.head.hidden_channels": 32,
    "val_dataloader": None,
    "val_cfg": None,
    "val_evaluator": None,
    "param_scheduler": None,
}
