# A tiny random-init D-FINE (HGNetV2 with 16-256 channels, hybrid encoder and 2 decoder
# layers of width 64, 50 queries; ~0.55 M parameters) for CPU runs and tests, on COCO-format
# data <data_root>/{train,val}/ + annotations/{train,val}.json, 128 px inputs.
# The generated 3-class set (rectangle, ellipse, triangle):
#   python tools/make_sample_data.py --task detection --out data/hf_coco --n-train 300 --n-val 60
# Another dataset: --data-root DIR; num_classes is the number of categories in its JSON.
_base_ = ["../_base_/schedules/hf.py"]

task = "detection"
data_root = "data/hf_coco"
image_size = 128

model = dict(
    type="DFineDetector",
    num_classes=None,  # the number of categories in annotations/train.json
    hf_config=dict(
        backbone_config=dict(
            model_type="hgnet_v2",
            stem_channels=[3, 16, 16],
            stage_in_channels=[16, 32, 64, 128],
            stage_mid_channels=[16, 16, 32, 64],
            stage_out_channels=[32, 64, 128, 256],
            stage_num_blocks=[1, 1, 1, 1],
            stage_downsample=[False, True, True, True],
            stage_light_block=[False, False, True, True],
            stage_kernel_size=[3, 3, 5, 5],
            stage_numb_of_layers=[2, 2, 2, 2],
            use_learnable_affine_block=True,
            depths=[1, 1, 1, 1],
            hidden_sizes=[32, 64, 128, 256],
            out_indices=[2, 3, 4],
        ),
        # Random init: batch statistics must be learned, not frozen at their init values.
        freeze_backbone_batch_norms=False,
        encoder_in_channels=[64, 128, 256],
        encoder_hidden_dim=64,
        encoder_ffn_dim=128,
        encoder_attention_heads=4,
        hidden_expansion=0.5,
        depth_mult=0.34,
        d_model=64,
        decoder_in_channels=[64, 64, 64],
        decoder_ffn_dim=128,
        decoder_layers=2,
        decoder_attention_heads=4,
        decoder_n_points=[3, 6, 3],
        num_queries=50,
        num_denoising=20,
        lqe_hidden_dim=32,
    ),
)

train_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="ResizeWithTargets", size=image_size),
    dict(type="RandomFlipWithTargets", prob=0.5),
    dict(type="PackDetInputs"),
]
test_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="ResizeWithTargets", size=image_size),
    dict(type="PackDetInputs"),
]

train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(type="CocoDetection", data_root=data_root, split="train", pipeline=train_pipeline),
)
test_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(type="CocoDetection", data_root=data_root, split="val", pipeline=test_pipeline),
)
test_evaluator = dict(type="DetectionMetric")
val_dataloader = None
val_cfg = None
val_evaluator = None

max_epochs = 30
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=5e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=0, end=max_epochs, eta_min=1e-5),
]
