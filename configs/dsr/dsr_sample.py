# DSR on the generated sample data (python tools/make_sample_data.py writes data/sample): a
# short CPU run at 64 px with narrow networks (codebooks 256 x 32, hidden 32, U-Nets of
# width 16). There is no ImageNet VQ model here, so the first stage trains the VQ model on
# the category's own training images (named in the log and in results.json's model_info),
# then the re-projection stage; the upsampling stage is left out (below). Adam 1e-3, batch 8,
# 9x9 mean filter for the image score (configs/dsr/README.md has the measurements behind
# these choices).
_base_ = "./dsr_mvtec.py"

data_root = "data/sample"
category = "disk"
image_size = 64
texture_dir = "data/dtd"

train_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="Resize", size=image_size),
    dict(type="PerlinAnomalyMask", prob=0.5, threshold=0.5, max_scale=6, max_rotation=90.0),
    dict(type="TextureAnomalyBlend", texture_dir=texture_dir, beta_range=(0.1, 1.0)),
    dict(type="PackAnomalyInputs", image_keys=["img_clean"]),
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
    dataset=dict(
        type="SampleDataset", data_root=data_root, category=category, pipeline=test_pipeline
    ),
)
val_dataloader = test_dataloader

# Phases: VQ epochs 1-20, re-projection 21-35 (100 / 75 steps of batch 8). The upsampling
# phase is left out (upsampling_epoch = max_epochs): 50 steps of it on the procedural
# texture anomalies made the map worse than the detection map it refines (README), and
# the residual module below then passes the detection map through unchanged.
vq_epochs = 20
upsampling_epoch = 35
max_epochs = 35
model = dict(
    embedding_dim=32,
    num_embeddings=256,
    hidden=32,
    residual_hidden=16,
    anomaly_width=16,
    upsampling_width=16,
    # The upsampling module refines the detection map (starts as the identity).
    upsampling_residual=True,
    # The VQ stage is trained here (named first stage), not loaded.
    vq_weights=None,
    vq_epochs=vq_epochs,
    upsampling_epoch=upsampling_epoch,
    score_kernel=9,
)
_adam = dict(type="Adam", lr=1e-3)
optim_wrapper = dict(
    vq=dict(optimizer=_adam),
    reprojection=dict(optimizer=_adam),
    upsampling=dict(optimizer=_adam),
)
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)

tiny_overrides = {
    "model.embedding_dim": 8,
    "model.num_embeddings": 32,
    "model.hidden": 8,
    "model.residual_hidden": 4,
    "model.anomaly_width": 4,
    "model.upsampling_width": 4,
    "model.vq_epochs": 1,
    "model.upsampling_epoch": 2,
    "model.score_kernel": 5,
    "train_cfg.max_epochs": 3,
    "train_cfg.val_interval": 3,
}
