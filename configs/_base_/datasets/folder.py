# Your own images (Folder), one category per run (tools/train.py --category overrides it).
# Layout: <data_root>/<category>/good/*, defect/* or defect/<defect_type>/*, and optionally
# masks/ or ground_truth/ (same stems, optional _mask suffix; found by mask_dir='auto').
# Without defect/ the data is normal-only: the report gives percentile thresholds.
# 20% of good/ goes to test (seeded) unless normal_test_dir names a folder of normal test
# images. metadata.csv, written next to the data, shows the resulting split.
# A model config that needs another input size re-declares both pipelines and hands them to
# the loaders (base variables are not visible in the child file), e.g.:
#   image_size = 224
#   train_pipeline = [dict(type='LoadAnomalyImage'), dict(type='Resize', size=image_size),
#                     dict(type='PackAnomalyInputs')]
#   test_pipeline = [dict(type='LoadAnomalyImage'), dict(type='LoadAnomalyMask'),
#                    dict(type='Resize', size=image_size), dict(type='PackAnomalyInputs')]
#   train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
#   test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
#   val_dataloader = test_dataloader
dataset_type = "Folder"
data_root = "data/folder"
category = "custom"
image_size = 256
folder_args = dict(
    normal_dir="good",
    abnormal_dir="defect",
    mask_dir="auto",
    normal_test_dir=None,
    normal_split_ratio=0.2,
    seed=0,
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
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        category=category,
        split="train",
        pipeline=train_pipeline,
        **folder_args,
    ),
)
test_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        category=category,
        split="test",
        pipeline=test_pipeline,
        **folder_args,
    ),
)
val_dataloader = test_dataloader

test_evaluator = dict(type="AnomalyMetric")
val_evaluator = test_evaluator
