# PatchCore (Roth et al., CVPR 2022) with the paper's setting: WideResNet-50 layers 2+3,
# 3x3 neighbourhood aggregation, 1024-d embeddings, 10% greedy coreset (128-d random
# projection), 9-NN reweighting, 256 px resized and centre-cropped to 224, blur sigma 4.
# The paper's setting: the short model name (`adtool train <model>`) resolves here.
default = True
# The original framework's name for this configuration (docs/api.md).
alias = ["patchcore-wide_resnet50_2"]
_base_ = [
    "../_base_/datasets/mvtec_crop224.py",
    "../_base_/default_runtime.py",
    "../_base_/schedules/fit.py",
]

model = dict(
    type="PatchCore",
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
    neck=dict(type="LocalPatchAggregator", kernel_size=3, target="first", embed_dim=1024),
    head=dict(type="KNNMemoryHead", coreset_ratio=0.1, num_neighbors=9, projection_dim=128),
    blur_sigma=4.0,
)

train_dataloader = dict(batch_size=8)
test_dataloader = dict(batch_size=8)
val_dataloader = None
val_evaluator = None
