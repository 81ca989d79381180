# EfficientAD-S on the generated sample data (python tools/make_sample_data.py writes
# data/sample): a CPU-sized run. Differs from the paper (configs/efficientad/README.md):
# 128 px; PDNs and autoencoder at a quarter of the hidden channels (width 0.25) and 128
# teacher channels (student 256); 400 steps of batch 1 at lr 1e-3 (x0.1 after 95 %).
# Teacher: backbones/pdn_small-w0.25-c128_effnetlite0.pth, distilled here from the bundled
# EfficientNet-Lite0 on 18 natural photos (no download); copy the shipped one
#   cp tests/assets/efficientad/pdn_small-w0.25-c128_effnetlite0.pth backbones/
# or recreate it (~9 min on one CPU thread):
#   python tools/make_sample_data.py --natural data/natural
#   python tools/distill_teacher.py data/natural --width 0.25 --out-channels 128 \
#       --image-size 128 --steps 200 --batch-size 16 --lr 1e-3 --crop-scale 0.3 \
#       --source-scale 1 --source-levels 1,2 --seed 0 --threads 1
# Penalty images: the same photos (data/natural).
_base_ = "./efficientad_s_mvtec.py"

data_root = "data/sample"
category = "disk"
image_size = 128

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
    dataset=dict(
        type="SampleDataset", data_root=data_root, category=category, pipeline=train_pipeline
    ),
)
test_dataloader = dict(
    batch_size=8,
    dataset=dict(
        type="SampleDataset", data_root=data_root, category=category, pipeline=test_pipeline
    ),
)

model = dict(
    input_size=image_size,
    width=0.25,
    teacher=dict(width=0.25, out_channels=128),
    penalty_dir="data/natural",
)
train_cfg = dict(max_iters=400)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = dict(milestones=[380])
default_hooks = dict(
    logger=dict(interval=100),
    checkpoint=dict(interval=400),
)

tiny_overrides = {"train_cfg.max_iters": 2, "param_scheduler.milestones": [1]}
