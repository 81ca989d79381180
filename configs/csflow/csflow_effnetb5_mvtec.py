# CS-Flow (Rudolph et al. 2022) with the paper's setting: EfficientNet-B5 features after
# block 36 (timm blocks.5 = torchvision features.6.8: 304 channels, stride 32) of the image
# at 768, 384 and 192 px (24x24, 12x12, 6x6 maps), one cross-scale flow of 4 blocks
# (permute + coupling, clamp 3, cross-convolution subnets with 1024 hidden channels,
# kernels 3, 3, 3, 5); Adam lr 2e-4 (eps 1e-4, weight decay 1e-5), gradients clipped to
# norm 1, batch 16, 240 epochs (4 meta epochs of 60, evaluated after each), no augmentation.
# tf_efficientnet_b5.aa_in1k is the network and weights of the official code's
# EfficientNet-PyTorch 'efficientnet-b5' (TF AutoAugment weights, TF 'same' padding).
# The paper's setting: the short model name (`adtool train <model>`) resolves here.
default = True
# The original framework's name for this configuration (docs/api.md).
alias = ["csflow-efficientnet_b5"]
_base_ = ["../_base_/datasets/mvtec.py", "../_base_/schedules/train.py"]

image_size = 768

model = dict(
    type="CSFlow",
    data_preprocessor=dict(
        type="AnomalyDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
    ),
    backbone=dict(
        type="TimmStageBackbone",
        arch="tf_efficientnet_b5.aa_in1k",
        stage=5,
        frozen=True,
        weights="imagenet",
    ),
    n_scales=3,
    coupling_blocks=4,
    clamp=3.0,
    hidden_channels=1024,
    kernel_sizes=None,
    input_size=image_size,
)

train_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="Resize", size=image_size),
    dict(type="PackAnomalyInputs"),
]
test_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="LoadAnomalyMask"),
    dict(type="Resize", size=image_size),
    dict(type="PackAnomalyInputs"),
]
train_dataloader = dict(batch_size=16, dataset=dict(pipeline=train_pipeline))
test_dataloader = dict(batch_size=16, dataset=dict(pipeline=test_pipeline))
val_dataloader = test_dataloader

optim_wrapper = dict(
    optimizer=dict(type="Adam", lr=2e-4, eps=1e-4, weight_decay=1e-5),
    clip_grad=dict(max_norm=1.0),
)
train_cfg = dict(max_epochs=240, val_interval=60)

# Read only by tests/apis/test_integration.py, never by a run: what its tiny run needs
# beyond the generic shrink (random weights, 64 px, 4-image batches, generated data).
# Narrow subnets (the paper's 1024 hidden channels make a 275M-parameter flow) and no validation
# (an EfficientNet-B5 best checkpoint beside the last one).
tiny_overrides = {
    "model.hidden_channels": 16,
    "val_dataloader": None,
    "val_cfg": None,
    "val_evaluator": None,
}
