# Convolutional autoencoder baseline (Bergmann et al., CVPR 2019 / VISAPP 2019): DCGAN-style
# encoder to a 100-d latent vector and mirrored decoder, trained with the mean squared error
# on normal images (Adam 2e-4, weight decay 1e-5, batch 32, 100 epochs), 256 px; map = per-pixel
# squared error, image score = map maximum. configs/autoencoder/README.md lists the choices.
# The paper's setting: the short model name (`adtool train autoencoder`) resolves here.
default = True
alias = ["autoencoder"]
_base_ = ["../_base_/datasets/mvtec.py", "../_base_/schedules/train.py"]

model = dict(
    type="ConvAutoencoder",
    # [-1, 1], the range of the decoder's tanh.
    data_preprocessor=dict(
        type="AnomalyDataPreprocessor", mean=[127.5, 127.5, 127.5], std=[127.5, 127.5, 127.5]
    ),
    input_size=256,
    latent_dim=100,
    base_channels=32,
    ssim_weight=0.0,
    map_type="l2",
    score="max",
    blur_sigma=4.0,
)

optim_wrapper = dict(optimizer=dict(type="Adam", lr=2e-4, weight_decay=1e-5))
train_cfg = dict(max_epochs=100)
train_dataloader = dict(batch_size=32)
