# Generated sample data (python tools/make_sample_data.py) (SampleDataset), one category per run (tools/train.py --category overrides it).
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
dataset_type = "SampleDataset"
data_root = "data/sample"
category = "disk"
image_size = 256

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
    ),
)
val_dataloader = test_dataloader

test_evaluator = dict(type="AnomalyMetric")
val_evaluator = test_evaluator
