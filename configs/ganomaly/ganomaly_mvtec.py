# GANomaly (Akcay et al., ACCV 2018): encoder-decoder-encoder generator and DCGAN
# discriminator, 100-d latent, 64 base channels, loss weights adversarial 1 / contextual 50 /
# encoder 1, two Adam optimisers (lr 2e-4, betas 0.5/0.999), batch 64, 15 epochs (the
# paper's), at 256 px instead of the paper's 32 px (configs/ganomaly/README.md).
# Image scores only (pixel: null).
# The paper's setting: the short model name (`adtool train ganomaly`) resolves here.
default = True
alias = ["ganomaly"]
_base_ = ["../_base_/datasets/mvtec.py", "../_base_/schedules/train.py"]

model = dict(
    type="GANomaly",
    # [-1, 1], the range of the generator's tanh.
    data_preprocessor=dict(
        type="AnomalyDataPreprocessor", mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]
    ),
    input_size=256,
    latent_dim=100,
    base_channels=64,
    extra_layers=0,
    adv_weight=1.0,
    con_weight=50.0,
    enc_weight=1.0,
)

_adam = dict(type="Adam", lr=2e-4, betas=(0.5, 0.999))
optim_wrapper = dict(
    constructor="MultiOptimWrapperConstructor",
    generator=dict(type="OptimWrapper", optimizer=_adam),
    discriminator=dict(type="OptimWrapper", optimizer=_adam),
)
train_cfg = dict(max_epochs=15)
train_dataloader = dict(batch_size=64)
