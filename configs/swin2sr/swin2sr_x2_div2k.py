# Swin2SR classical x2 (caidas/swin2SR-classical-sr-x2-64: embed 180, 6 stages of 6
# Swin-V2 blocks, window 8, pixel-shuffle upsampler) fine-tuned and tested on DIV2K-style
# pairs: <data_root>/{train,val}/HR/0001.png + LR_x2/0001x2.png (DIV2K_{train,valid}_HR and
# DIV2K_{train,valid}_LR_bicubic/X2 moved into that layout; LR_x2 may be left out).
# The weights come from a local folder written by save_pretrained (docs/hf_models.md):
#   backbones/hf/swin2SR-classical-sr-x2-64/{config.json, model.safetensors}
# Scored as in the paper: PSNR/SSIM on the Y channel with a 2-pixel border cropped.
# The paper's setting: the short model name (`adtool train <model>`) resolves here.
default = True
_base_ = "./swin2sr_tiny_x2.py"

data_root = "data/div2k"
lr_patch = 64

model = dict(
    pretrained="backbones/hf/swin2SR-classical-sr-x2-64",
    hf_config=None,
    residual=None,
)

train_pipeline = [
    dict(type="LoadSRPair", scale=2),
    dict(type="RandomSRCrop", lr_size=lr_patch),
    dict(type="RandomSRFlip"),
    dict(type="PackSRInputs"),
]
train_dataloader = dict(batch_size=4, dataset=dict(data_root=data_root, pipeline=train_pipeline))
test_dataloader = dict(batch_size=1, dataset=dict(data_root=data_root))
test_evaluator = dict(type="SuperResolutionMetric", crop_border=2, y_channel=True)

max_epochs = 5
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(optimizer=dict(type="Adam", lr=2e-5, betas=(0.9, 0.99)))
param_scheduler = [
    dict(type="CosineAnnealingLR", by_epoch=True, begin=0, end=max_epochs, eta_min=1e-6),
]

# Read only by tests/apis/test_integration.py, never by a run: what its tiny run needs
# beyond the generic shrink (random weights, 64 px, 4-image batches, generated data).
# The tiny config's random-init Swin2SR and crops instead of the local pretrained folder.
tiny_overrides = {
    "model.pretrained": None,
    "model.hf_config": {{_base_.model.hf_config}},
    "train_dataloader.dataset.pipeline.1.lr_size": {{_base_.lr_patch}},
}
