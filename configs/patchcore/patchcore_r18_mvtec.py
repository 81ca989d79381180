# PatchCore with ResNet-18 layers 2+3 (a light backbone; embeddings kept at 384-d).
_base_ = "./patchcore_wrn50_mvtec.py"

# The original framework's name for this configuration (docs/api.md).
alias = ["patchcore-resnet18"]

model = dict(
    backbone=dict(arch="resnet18.tv_in1k"),
    neck=dict(embed_dim=None),
)
