# PaDiM with the paper's WideResNet-50-2 setting: layers 1-3 (256+512+1024 = 1792
# channels), a random subset of 550. At 224 px the 56 x 56 inverse covariances take
# 3.8 GB (float32) in memory and in the checkpoint.
# The paper's setting: the short model name (`adtool train <model>`) resolves here.
default = True
# The original framework's name for this configuration (docs/api.md).
alias = ["padim-wide_resnet50_2"]
_base_ = "./padim_r18_mvtec.py"

model = dict(
    backbone=dict(arch="wide_resnet50_2.tv_in1k"),
    neck=dict(num_channels=550),
)

# Read only by tests/apis/test_integration.py, never by a run: what its tiny run needs
# beyond the generic shrink (random weights, 64 px, 4-image batches, generated data).
# 100 channels as the R18 config: 550 would invert 256 covariances of 550 x 550 here.
tiny_overrides = {"model.neck.num_channels": 100}
