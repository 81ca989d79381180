# EoMT-L (DINOv2 ViT-L/16, 24 layers, the last 4 with queries; ~0.3 B parameters,
# 58.4 ADE20K val mIoU in the paper) from the released ADE20K semantic weights, 512 px.
# Weights: on a machine with internet (docs/hf_models.md),
#   python -c "from transformers import EomtForUniversalSegmentation as M, AutoImageProcessor as P; \
#     M.from_pretrained('tue-mps/ade20k_semantic_eomt_large_512').save_pretrained('backbones/hf/ade20k_semantic_eomt_large_512'); \
#     P.from_pretrained('tue-mps/ade20k_semantic_eomt_large_512').save_pretrained('backbones/hf/ade20k_semantic_eomt_large_512')"
# and copy the folder here. Data: <data_root>/{train,val}/ images + masks/{train,val}/ PNGs
# with ADE20K's labels (0 = unlabelled -> ignored, 1..150 -> classes 0..149: the
# reduce_zero_label step) and <data_root>/classes.txt (150 names, or set dataset classes).
# Images are resized to 512x512 (the processor's sliding window over the short side is
# not reproduced), so mIoU here is not the paper's protocol.
# Another dataset: --cfg-options model.num_classes=K (a new K-class head, the rest kept)
# and drop reduce_zero_label if its masks use 0 as a class.
# The paper's setting: the short model name (`adtool train <model>`) resolves here.
default = True
_base_ = "./eomt_tiny_seg.py"

data_root = "data/ade20k"
image_size = 512

model = dict(
    num_classes=150,
    pretrained="backbones/hf/ade20k_semantic_eomt_large_512",
    # The folder's config.json defines the architecture; nothing to override.
    hf_config=dict(_delete_=True),
)

train_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="LoadSegMask", reduce_zero_label=True),
    dict(type="ResizeWithTargets", size=image_size),
    dict(type="RandomFlipWithTargets", prob=0.5),
    dict(type="PackSegInputs"),
]
test_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="LoadSegMask", reduce_zero_label=True),
    dict(type="ResizeWithTargets", size=image_size),
    dict(type="PackSegInputs"),
]
train_dataloader = dict(batch_size=4, dataset=dict(data_root=data_root, pipeline=train_pipeline))
test_dataloader = dict(batch_size=4, dataset=dict(data_root=data_root, pipeline=test_pipeline))

# Fine-tuning: AdamW at the paper's 1e-4 with the pretrained ViT at a tenth of it (a
# coarse stand-in for its layer-wise decay), polynomial decay, shortened. The paper's
# attention-mask annealing is not scheduled: the mask probabilities stay as saved.
max_epochs = 10
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=1e-4, weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={"model.layers": dict(lr_mult=0.1), "model.embeddings": dict(lr_mult=0.1)}
    ),
    clip_grad=dict(max_norm=1.0),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.01, by_epoch=False, begin=0, end=500),
    dict(type="PolyLR", power=0.9, by_epoch=True, begin=0, end=max_epochs, eta_min=0.0),
]

# Read only by tests/apis/test_integration.py, never by a run: what its tiny run needs
# beyond the generic shrink (random weights, 64 px, 4-image batches, generated data).
# The tiny config's random-init EoMT at its 64 px instead of the local pretrained folder,
# with the generated set's classes (the metric takes its class count from the data).
tiny_overrides = {
    "model.pretrained": None,
    "model.num_classes": {{_base_.model.num_classes}},
    "model.hf_config": {{_base_.model.hf_config}},
    "train_dataloader.dataset.pipeline.2.size": {{_base_.image_size}},
    "test_dataloader.dataset.pipeline.2.size": {{_base_.image_size}},
}
