# A small random-init ViT (64 px, 8 px patches, 4 layers of width 128) for CPU runs and
# tests, on ImageFolder data <data_root>/{train,val}/<class>/*. The generated 4-class set:
#   python tools/make_sample_data.py --task classification --out data/hf_cls
# Another dataset: --data-root DIR; num_classes is read from its class folders.
_base_ = ["../_base_/schedules/hf.py"]

task = "classification"
data_root = "data/hf_cls"
image_size = 64

model = dict(
    type="ViTClassifier",
    num_classes=None,  # the number of class folders under <data_root>/train
    hf_config=dict(
        image_size=image_size,
        patch_size=8,
        hidden_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=256,
    ),
    data_preprocessor=dict(type="HFDataPreprocessor", mean=[127.5] * 3, std=[127.5] * 3),
)

train_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="Resize", size=image_size),
    dict(type="RandomHorizontalFlip"),
    dict(type="RandomVerticalFlip"),
    dict(type="PackClsInputs"),
]
test_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="Resize", size=image_size),
    dict(type="PackClsInputs"),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(
        type="ImageFolderCls", data_root=data_root, split="train", pipeline=train_pipeline
    ),
)
test_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(type="ImageFolderCls", data_root=data_root, split="val", pipeline=test_pipeline),
)
test_evaluator = dict(type="ClassificationMetric")
val_dataloader = None
val_cfg = None
val_evaluator = None

max_epochs = 10
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=2e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=1.0),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=25),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=0, end=max_epochs, eta_min=1e-5),
]
