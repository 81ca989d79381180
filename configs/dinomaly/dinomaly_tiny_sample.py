# Dinomaly sized for a CPU and the generated sample data (python tools/make_sample_data.py
# writes data/sample): a small random-init ViT of the DINOv2-reg family (patch 14, 4
# register tokens, width 64, 4 heads, 6 blocks; no DINOv2 weights are on this machine) at
# 112 px (8 x 8 tokens), blocks 2-5 in two groups of two, a 4-block decoder, batch 8,
# 150 iterations with a 15-iteration warm-up and the hard-mining ramp over 50; otherwise
# the paper's recipe. Used by tests/quality/test_dinomaly_quality.py.
#   python tools/train.py configs/dinomaly/dinomaly_tiny_sample.py --category disk
_base_ = "./dinomaly_vit-b14-reg4_448_mvtec.py"
# The original framework's name for this configuration (docs/api.md).
alias = ["dinomaly-tiny"]

multi_class = False
data_root = "data/sample"
category = "disk"
image_size = 112
max_iters = 150

model = dict(
    backbone=dict(
        arch="vit_small_patch14_reg4_dinov2",
        block_indices=[2, 3, 4, 5],
        weights=None,
        model_kwargs=dict(dynamic_img_size=True, embed_dim=64, num_heads=4, depth=6),
    ),
    decoder=dict(depth=4),
    groups=[[0, 1], [2, 3]],
    loss=dict(warmup_iters=50),
)

train_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="Resize", size=image_size),
    dict(type="PackAnomalyInputs"),
]
test_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="LoadAnomalyMask"),
    dict(type="Resize", size=image_size),
    dict(type="PackAnomalyInputs"),
]
train_dataloader = dict(
    batch_size=8,
    dataset=dict(
        type="SampleDataset", data_root=data_root, category=category, pipeline=train_pipeline
    ),
)
test_dataloader = dict(
    batch_size=16,
    dataset=dict(
        type="SampleDataset", data_root=data_root, category=category, pipeline=test_pipeline
    ),
)

train_cfg = dict(max_iters=max_iters)
param_scheduler = [
    dict(type="LinearLR", start_factor=1e-3, by_epoch=False, begin=0, end=15),
    dict(
        type="CosineAnnealingLR",
        by_epoch=False,
        begin=15,
        end=max_iters,
        T_max=max_iters - 15,
        eta_min=2e-4,
    ),
]
default_hooks = dict(checkpoint=dict(interval=max_iters))

# Read only by tests/apis/test_integration.py: four iterations at 56 px (a multiple of
# the patch size 14, instead of the generic 64 px).
tiny_overrides = {
    "_delete_": True,
    "train_cfg.max_iters": 4,
    "train_dataloader.dataset.pipeline.1.size": 56,
    "test_dataloader.dataset.pipeline.2.size": 56,
}
