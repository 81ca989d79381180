# Dinomaly with the DINOv2-reg ViT-S/14 encoder (384 wide, 6 heads: the decoder follows),
# blocks 2-9 as for ViT-B; otherwise dinomaly_vit-b14-reg4_224_mvtec.py.
_base_ = "./dinomaly_vit-b14-reg4_224_mvtec.py"
# The original framework's name for this configuration (docs/api.md).
alias = ["dinomaly-small-224"]

model = dict(backbone=dict(arch="vit_small_patch14_reg4_dinov2"))
