# A small random-init ViT for CPU runs and tests, on ImageFolder data
# <data_root>/{train,val}/<class>/*: 32 px inputs, 4 px patches (64 tokens), 4 layers of width
# 128. A recipe for small real images trained from scratch: random shifts (no mirroring:
# orientation is part of a digit's or a letter's class), label smoothing 0.1, one warm-up
# epoch then cosine, 15 epochs (about 100 s on one CPU thread for the 1437 real digits).
#   python tools/make_sample_data.py --task classification --real-digits --out data/digits
#   python tools/train.py configs/vit/vit_tiny_imagefolder.py --data-root data/digits
# Data whose orientation does not matter (textures, shapes, top-down parts): turn the flips
# on with --cfg-options train_dataloader.dataset.pipeline.3.prob=0.5
# train_dataloader.dataset.pipeline.4.prob=0.5. num_classes is read from the class folders.
_base_ = ["../_base_/schedules/hf.py"]

task = "classification"
data_root = "data/hf_cls"
image_size = 32
flip_prob = 0.0  # mirroring left-right and top-bottom; 0.5 where orientation carries no label

model = dict(
    type="ViTClassifier",
    num_classes=None,  # the number of class folders under <data_root>/train
    label_smoothing=0.1,
    hf_config=dict(
        image_size=image_size,
        patch_size=4,
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
    dict(type="RandomShift", max_shift=image_size // 8),
    dict(type="RandomHorizontalFlip", prob=flip_prob),
    dict(type="RandomVerticalFlip", prob=flip_prob),
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

max_epochs = 15
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=2e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=1.0),
)
# One warm-up epoch (stepped per iteration, whatever the data size), then cosine.
param_scheduler = [
    dict(
        type="LinearLR",
        start_factor=0.1,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True,
    ),
    dict(type="CosineAnnealingLR", by_epoch=True, begin=0, end=max_epochs, eta_min=1e-5),
]
