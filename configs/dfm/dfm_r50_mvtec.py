# DFM (Ahuja et al. 2019) as anomalib's default: ResNet-50 layer3 (1024 channels, stride
# 16; torchvision's weights), 4x4 average pooling, PCA keeping 97% of the variance,
# feature-reconstruction-error score. 256 px without crop, as anomalib: layer3 is 16 x 16,
# which the 4x4 window divides (-> 4 x 4 grid, 16384-d image vectors). A 224 crop would
# give 14 x 14, whose last 2 rows and columns the pooling would drop (AvgPoolNeck refuses).
# The paper's setting: the short model name (`adtool train <model>`) resolves here.
default = True
# The original framework's name for this configuration (docs/api.md).
alias = ["dfm-resnet50"]
_base_ = [
    "../_base_/datasets/mvtec.py",
    "../_base_/default_runtime.py",
    "../_base_/schedules/fit.py",
]

model = dict(
    type="DFM",
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
    neck=dict(type="AvgPoolNeck", kernel_size=4),
    # score_type='nll' scores the Gaussian likelihood of the PCA coordinates instead.
    head=dict(type="PCAFeatureHead", pca_level=0.97, score_type="fre"),
    blur_sigma=0.0,
)

train_dataloader = dict(batch_size=8)
test_dataloader = dict(batch_size=8)
val_dataloader = None
val_evaluator = None

# Read only by tests/apis/test_integration.py, never by a run: what its tiny run needs
# beyond the generic shrink (random weights, 64 px, 4-image batches, generated data).
# 4x4 pooling of a 64 px image's stride-16 map would leave one cell: pool 2x2.
tiny_overrides = {"model.neck.kernel_size": 2}
