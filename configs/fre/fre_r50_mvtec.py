# FRE (Ndiour et al., BMVC 2023) as anomalib's default: ResNet-50 layer3 (1024 channels,
# stride 16; torchvision's weights, frozen), 2x2 average pooling, a tied linear
# autoencoder 65536 -> 220 -> 65536 trained with MSE, Adam lr 1e-3, batch 32, 220 epochs;
# score = feature reconstruction error summed over the 8 x 8 pooled grid, map = its
# per-position split upsampled bilinearly. 256 px without crop (layer3: 16 x 16 -> 8 x 8;
# 1024 x 8 x 8 = 65536, the paper's input_dim).
# The paper's setting: the short model name (`adtool train <model>`) resolves here.
default = True
# The original framework's name for this configuration (docs/api.md).
alias = ["fre-resnet50"]
_base_ = ["../_base_/datasets/mvtec.py", "../_base_/schedules/train.py"]

model = dict(
    type="FRE",
    data_preprocessor=dict(
        type="AnomalyDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
    ),
    backbone=dict(
        type="TimmBackbone",
        arch="resnet50.tv_in1k",
        out_indices=(3,),
        frozen=True,
        weights="imagenet",
    ),
    neck=dict(type="AvgPoolNeck", kernel_size=2),
    # input_dim is computed from the backbone, the pooling and input_size.
    head=dict(type="TiedLinearAE", latent_dim=220),
    input_size=256,
    # The backbone is frozen and the pipeline deterministic: compute each training image's
    # features once and reuse them in the other 219 epochs (the same training, ~100x less
    # backbone work; ~260 KB of memory per training image).
    cache_features=True,
    blur_sigma=0.0,
)

optim_wrapper = dict(optimizer=dict(type="Adam", lr=1e-3))
# Nothing is selected on validation (the final weights are tested): validate and write a
# checkpoint every 20 epochs (and after the last), not a full test pass and a 100 MB file
# per epoch of a model whose epoch is a few cheap steps on cached features.
train_cfg = dict(max_epochs=220, val_interval=20)
default_hooks = dict(checkpoint=dict(interval=20))
train_dataloader = dict(batch_size=32)

# Read only by tests/apis/test_integration.py, never by a run: what its tiny run needs
# beyond the generic shrink (random weights, 64 px, 4-image batches, generated data).
# 64 px gives a 4 x 4 layer3 map pooled to 2 x 2 (4096-d vectors): nothing else needed.
tiny_overrides = {}
