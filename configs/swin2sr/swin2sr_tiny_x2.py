# A small random-init Swin2SR (x2; 2 stages of 2 Swin-V2 blocks, width 48, window 8,
# one-step pixel-shuffle) for CPU runs and tests, learning the residual over bicubic
# upscaling. Data: <data_root>/{train,val}/HR (+ LR_x2, else made by bicubic downscaling).
# The generated set:
#   python tools/make_sample_data.py --task super_resolution --out data/hf_sr
_base_ = ["../_base_/schedules/hf.py"]

task = "super_resolution"
data_root = "data/hf_sr"
scale = 2
lr_patch = 24

model = dict(
    type="Swin2SRSuperResolution",
    hf_config=dict(
        image_size=lr_patch,
        embed_dim=48,
        depths=[2, 2],
        num_heads=[2, 2],
        window_size=8,
        mlp_ratio=2.0,
        upscale=scale,
        upsampler="pixelshuffledirect",
        drop_path_rate=0.0,
    ),
    residual="bicubic",
)

train_pipeline = [
    dict(type="LoadSRPair", scale=scale),
    dict(type="RandomSRCrop", lr_size=lr_patch),
    dict(type="RandomSRFlip"),
    dict(type="PackSRInputs"),
]
test_pipeline = [
    dict(type="LoadSRPair", scale=scale),
    dict(type="PackSRInputs"),
]
# tools/infer.py: the input is the low-resolution image itself.
infer_pipeline = [dict(type="LoadAnomalyImage"), dict(type="PackSRInputs")]

train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(
        type="SRPairs", data_root=data_root, split="train", scale=scale, pipeline=train_pipeline
    ),
)
test_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(
        type="SRPairs", data_root=data_root, split="val", scale=scale, pipeline=test_pipeline
    ),
)
test_evaluator = dict(type="SuperResolutionMetric")
val_dataloader = None
val_cfg = None
val_evaluator = None

max_epochs = 5
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="Adam", lr=1e-3, betas=(0.9, 0.99)),
    clip_grad=dict(max_norm=1.0),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=20),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=0, end=max_epochs, eta_min=1e-5),
]
