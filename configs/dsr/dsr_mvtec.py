# DSR (Zavrtanik et al., ECCV 2022): two-level VQ-VAE with 4096 x 128 codebooks (general
# appearance, ImageNet-pretrained in the paper: backbones/dsr_vq_imagenet.pth or the official
# vq_model_pretrained_128_4096.pckl), subspace restriction modules + object-specific decoder +
# anomaly detection U-Net trained on codebook-space anomalies (strength in [0.2, 1]), then the
# upsampling U-Net on image-level Perlin/texture anomalies; Adam 2e-4, batch 8, 256 px,
# 700 epochs with the upsampling phase over the last 30% (anomalib's split); map = upsampled
# softmax, score = max of the detection map's 21x21 mean. configs/dsr/README.md lists the choices.
# The paper's setting: the short model name (`adtool train dsr`) resolves here.
default = True
alias = ["dsr"]
_base_ = ["../_base_/datasets/mvtec.py", "../_base_/schedules/train.py"]

image_size = 256
# Image-level anomalies of the upsampling phase: DTD (https://www.robots.ox.ac.uk/~vgg/data/dtd/)
# unpacked under this folder (any folder of images works); without it a procedural Perlin
# texture is used. The re-projection phase uses only the Perlin masks (codebook anomalies).
texture_dir = "data/dtd"

train_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="Resize", size=image_size),
    # Half the images stay normal (official code); noise rotated by up to 90 degrees.
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
train_dataloader = dict(batch_size=8, dataset=dict(pipeline=train_pipeline))
test_dataloader = dict(batch_size=8, dataset=dict(pipeline=test_pipeline))
val_dataloader = test_dataloader

max_epochs = 700
model = dict(
    type="DSR",
    # [0, 1], as the official code feeds its networks.
    data_preprocessor=dict(type="AnomalyDataPreprocessor", mean=[0.0, 0.0, 0.0], std=[255.0] * 3),
    embedding_dim=128,
    num_embeddings=4096,
    hidden=128,
    residual_layers=2,
    residual_hidden=64,
    anomaly_width=64,
    upsampling_width=64,
    anomaly_strength=0.2,
    image_loss_weight=10.0,
    # The ImageNet VQ model from backbones/; without the file the first 100 epochs train it
    # on the category's training images instead (logged, and model_info in results.json).
    vq_weights="imagenet",
    vq_epochs=100,
    upsampling_epoch=490,
    score_kernel=21,
    loss_focal=dict(type="FocalLoss", gamma=2.0),
)

_adam = dict(type="Adam", lr=2e-4)
optim_wrapper = dict(
    constructor="MultiOptimWrapperConstructor",
    vq=dict(type="OptimWrapper", optimizer=_adam),
    reprojection=dict(type="OptimWrapper", optimizer=_adam),
    upsampling=dict(type="OptimWrapper", optimizer=_adam),
)
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)

# Three tiny epochs so that each phase (and each optimiser) runs once: VQ, re-projection,
# upsampling; validated once at the end.
tiny_overrides = {
    "model.embedding_dim": 8,
    "model.num_embeddings": 32,
    "model.hidden": 8,
    "model.residual_hidden": 4,
    "model.anomaly_width": 4,
    "model.upsampling_width": 4,
    "model.vq_weights": None,
    "model.vq_epochs": 1,
    "model.upsampling_epoch": 2,
    "model.score_kernel": 5,
    "train_cfg.max_epochs": 3,
    "train_cfg.val_interval": 3,
}
