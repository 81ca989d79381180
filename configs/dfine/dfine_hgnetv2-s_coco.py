# D-FINE-S (HGNetV2-B0 backbone, 3 decoder layers, 300 queries; 10 M parameters, 48.5 COCO
# val AP in the paper) fine-tuned from the released COCO weights, 640 px inputs.
# Weights: on a machine with internet (docs/hf_models.md),
#   python -c "from transformers import DFineForObjectDetection as M, AutoImageProcessor as P; \
#     M.from_pretrained('ustc-community/dfine-small-coco').save_pretrained('backbones/hf/dfine-small-coco'); \
#     P.from_pretrained('ustc-community/dfine-small-coco').save_pretrained('backbones/hf/dfine-small-coco')"
# and copy the folder here. Data: <data_root>/{train,val}/ + annotations/{train,val}.json.
# COCO 2017 itself: --cfg-options train_dataloader.dataset.img_dir=train2017
#   train_dataloader.dataset.ann_file=annotations/instances_train2017.json (val likewise);
#   its 80 category ids map to labels 0..79 in id order, as the released head expects.
# Another dataset: --cfg-options model.num_classes=K (a new K-class head, the rest kept).
# The paper's setting: the short model name (`adtool train <model>`) resolves here.
default = True
_base_ = "./dfine_tiny_coco.py"

data_root = "data/coco"
image_size = 640

model = dict(
    num_classes=80,
    pretrained="backbones/hf/dfine-small-coco",
    # The folder's config.json defines the architecture; nothing to override.
    hf_config=dict(_delete_=True),
    image_processor=dict(size=dict(height=image_size, width=image_size)),
)

train_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="ResizeWithTargets", size=image_size),
    dict(type="RandomFlipWithTargets", prob=0.5),
    dict(type="PackDetInputs"),
]
test_pipeline = [
    dict(type="LoadAnomalyImage"),
    dict(type="ResizeWithTargets", size=image_size),
    dict(type="PackDetInputs"),
]
train_dataloader = dict(batch_size=8, dataset=dict(data_root=data_root, pipeline=train_pipeline))
test_dataloader = dict(batch_size=8, dataset=dict(data_root=data_root, pipeline=test_pipeline))

# Fine-tuning recipe after the paper's (AdamW, weight decay 1e-4, backbone at half the
# learning rate, no decay on norms, gradient clipping 0.1), shortened to 12 epochs.
max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=2e-4, betas=(0.9, 0.999), weight_decay=1e-4),
    # bypass_duplicate: D-FINE's decoder shares its class/box heads with the outer model,
    # so the same parameters are reached twice; without it the optimiser refuses them.
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        custom_keys={"model.model.backbone": dict(lr_mult=0.5)},
        bypass_duplicate=True,
    ),
    clip_grad=dict(max_norm=0.1),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type="MultiStepLR", by_epoch=True, milestones=[10], gamma=0.1),
]

# Read only by tests/apis/test_integration.py, never by a run: what its tiny run needs
# beyond the generic shrink (random weights, 64 px, 4-image batches, generated data).
# The tiny config's random-init D-FINE at its 128 px instead of the local pretrained folder.
tiny_overrides = {
    "model.pretrained": None,
    "model.num_classes": None,  # read from the generated data's categories
    "model.hf_config": {{_base_.model.hf_config}},
    "model.image_processor.size": dict(height={{_base_.image_size}}, width={{_base_.image_size}}),
    "train_dataloader.dataset.pipeline.1.size": {{_base_.image_size}},
    "test_dataloader.dataset.pipeline.1.size": {{_base_.image_size}},
}
