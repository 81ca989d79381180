# Dinomaly with the DINOv2-reg ViT-L/14 encoder (1024 wide, 16 heads: the decoder follows)
# and, as the official code for its 24 blocks, every second block of 4-18; otherwise
# dinomaly_vit-b14-reg4_392_mvtec.py.
_base_ = "./dinomaly_vit-b14-reg4_392_mvtec.py"
# The original framework's name for this configuration (docs/api.md).
alias = ["dinomaly-large-392"]

model = dict(
    backbone=dict(arch="vit_large_patch14_reg4_dinov2", block_indices=[4, 6, 8, 10, 12, 14, 16, 18])
)

# Read only by tests/apis/test_integration.py: the ViT-S/14 stand-in has 12 blocks.
tiny_overrides = {
    "train_cfg.max_iters": 4,
    "model.backbone.arch": "vit_small_patch14_reg4_dinov2",
    "model.backbone.block_indices": [2, 3, 4, 5, 6, 7, 8, 9],
}
