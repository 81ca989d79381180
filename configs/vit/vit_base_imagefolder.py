# ViT-B/16 (ImageNet-21k pre-trained, ImageNet-1k fine-tuned: google/vit-base-patch16-224)
# fine-tuned on ImageFolder data; the 1000-class head is replaced by a num_classes head.
# The weights come from a local folder written by save_pretrained (docs/hf_models.md):
#   backbones/hf/vit-base-patch16-224/{config.json, model.safetensors, preprocessor_config.json}
# 224 px inputs normalised with mean = std = 0.5, as that checkpoint's image processor does.
# The paper's setting: the short model name (`adtool train <model>`) resolves here.
default = True
_base_ = "./vit_tiny_imagefolder.py"

image_size = 224

model = dict(
    num_classes=None,  # the number of class folders under <data_root>/train
    pretrained="backbones/hf/vit-base-patch16-224",
    hf_config=None,
    label_smoothing=0.0,
)

train_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="Resize", size=image_size),
    dict(type="RandomHorizontalFlip"),
    dict(type="PackClsInputs"),
]
test_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="Resize", size=image_size),
    dict(type="PackClsInputs"),
]
train_dataloader = dict(batch_size=16, dataset=dict(pipeline=train_pipeline))
test_dataloader = dict(batch_size=32, dataset=dict(pipeline=test_pipeline))
# Validate on the val split after every epoch (the tiny config skips this).
val_dataloader = dict(
    _delete_=True,
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(
        type="ImageFolderCls", data_root="data/hf_cls", split="val", pipeline=test_pipeline
    ),
)
val_cfg = dict(_delete_=True, type="ValLoop")
val_evaluator = dict(_delete_=True, type="ClassificationMetric")

max_epochs = 5
train_cfg = dict(max_epochs=max_epochs, val_interval=1)
optim_wrapper = dict(optimizer=dict(type="AdamW", lr=5e-5, weight_decay=0.05))
param_scheduler = [
    dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=0, end=max_epochs, eta_min=1e-6),
]

# Read only by tests/apis/test_integration.py, never by a run: what its tiny run needs
# beyond the generic shrink (random weights, 64 px, 4-image batches, generated data).
# The tiny config's random-init ViT at its 64 px instead of the local pretrained folder.
tiny_overrides = {
    "model.pretrained": None,
    "model.hf_config": {{_base_.model.hf_config}},
    "train_dataloader.dataset.pipeline.1.size": {{_base_.image_size}},
    "val_dataloader.dataset.pipeline.1.size": {{_base_.image_size}},
    "test_dataloader.dataset.pipeline.1.size": {{_base_.image_size}},
}
