# CFA with ResNet-18 layers 1-3 (64+128+256 = 448 channels; torchvision's weights), the
# paper's smaller backbone; otherwise as cfa_wrn50_mvtec.py.
_base_ = "./cfa_wrn50_mvtec.py"

# The original framework's name for this configuration (docs/api.md).
alias = ["cfa-resnet18"]

model = dict(backbone=dict(arch="resnet18.tv_in1k"))
