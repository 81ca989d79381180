# A tiny random-init EoMT (ViT of width 96, 4 layers, 8 px patches, the last 2 layers with
# 10 query tokens; ~0.54 M parameters) for CPU runs and tests, on semantic-segmentation
# data <data_root>/{train,val}/ + masks/{train,val}/ (same names, 255 = ignore), 64 px.
# The generated 4-class set (background, rectangle, ellipse, triangle):
#   python tools/make_sample_data.py --task segmentation --out data/hf_seg --n-train 300 --n-val 60
# Another dataset: --data-root DIR; num_classes is the number of names in its classes.txt
# (without one, class_<id> for the ids found in its training masks, with a warning).
_base_ = ["../_base_/schedules/hf.py"]

task = "segmentation"
data_root = "data/hf_seg"
image_size = 64

model = dict(
    type="EomtSegmenter",
    num_classes=None,  # from classes.txt, else the ids in the training masks
    hf_config=dict(
        image_size=image_size,
        patch_size=8,
        hidden_size=96,
        num_hidden_layers=4,
        num_attention_heads=3,
        num_blocks=2,
        num_queries=10,
        num_register_tokens=1,
        num_upscale_blocks=1,
        # Point-sampled mask loss: 1024 of the 16x16 upscaled mask logits' positions.
        train_num_points=1024,
    ),
)

train_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="LoadSegMask"),
    dict(type="ResizeWithTargets", size=image_size),
    dict(type="RandomFlipWithTargets", prob=0.5),
    dict(type="PackSegInputs"),
]
test_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="LoadSegMask"),
    dict(type="ResizeWithTargets", size=image_size),
    dict(type="PackSegInputs"),
]

train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(type="SegMasks", data_root=data_root, split="train", pipeline=train_pipeline),
)
test_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(type="SegMasks", data_root=data_root, split="val", pipeline=test_pipeline),
)
test_evaluator = dict(type="SegmentationMetric")
val_dataloader = None
val_cfg = None
val_evaluator = None

max_epochs = 20
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=1e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=1.0),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=50),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=0, end=max_epochs, eta_min=1e-5),
]
