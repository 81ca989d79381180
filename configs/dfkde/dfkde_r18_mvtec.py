# DFKDE as anomalib's default: ResNet-18 layer4 (512 channels; torchvision's weights),
# globally average-pooled, PCA to 16 dims, scaled by the largest training norm, Gaussian KDE
# (Scott's bandwidth) over at most 40 000 training vectors, log density calibrated by
# anomalib's logistic. 256 px, no crop. Image scores only (results: pixel null).
# The paper's setting: the short model name (`adtool train <model>`) resolves here.
default = True
# The original framework's name for this configuration (docs/api.md).
alias = ["dfkde-resnet18"]
_base_ = [
    "../_base_/datasets/mvtec.py",
    "../_base_/default_runtime.py",
    "../_base_/schedules/fit.py",
]

model = dict(
    type="DFKDE",
    data_preprocessor=dict(
        type="AnomalyDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
    ),
    backbone=dict(
        type="TimmBackbone",
        arch="resnet18.tv_in1k",
        out_indices=(4,),
        frozen=True,
        weights="imagenet",
    ),
    head=dict(type="KDEHead", n_components=16, feature_scaling="scale", max_training_points=40000),
)

train_dataloader = dict(batch_size=32)
test_dataloader = dict(batch_size=32)
val_dataloader = None
val_evaluator = None

# Read only by tests/apis/test_integration.py, never by a run: what its tiny run needs
# beyond the generic shrink (random weights, 64 px, 4-image batches, generated data).
# Its 6 training images cannot fit 16 PCA dims (the KDE needs more images than dims).
tiny_overrides = {"model.head.n_components": 4}
