# FastFlow with ResNet-18 layers 1-3: as the official ResNet-18 setting, every flow step
# uses 3x3 subnets (conv3x3_only), 8 steps, hidden ratio 1.0.
_base_ = "./fastflow_wrn50_mvtec.py"

# The original framework's name for this configuration (docs/api.md).
alias = ["fastflow-resnet18"]

model = dict(
    backbone=dict(arch="resnet18.tv_in1k"),
    head=dict(conv3x3_only=True),
)
