"""SSIM and focal losses shared by the reconstruction methods."""

import torch
import torch.nn.functional as F

from adtool.models.losses import FocalLoss, SSIMLoss, ssim_distance_map
from adtool.registry import MODELS


def test_ssim_loss_is_one_minus_mean_ssim():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    loss = MODELS.build(dict(type="SSIMLoss", window_size=7))
    assert loss(x, x).abs() < 1e-4
    y = torch.rand(2, 3, 32, 32)
    # Independent noise images: SSIM near 0, so the loss near 1.
    assert 0.9 < loss(x, y) < 1.1
    assert torch.allclose(loss(x, y), ssim_distance_map(x, y, 7).mean(), atol=1e-5)
    assert torch.allclose(SSIMLoss(7, loss_weight=3.0)(x, y), 3 * loss(x, y))


def test_ssim_distance_map_is_zero_where_images_agree():
    x = torch.rand(1, 3, 32, 32)
    y = x.clone()
    y[..., 20:, 20:] = 1 - y[..., 20:, 20:]
    dist = ssim_distance_map(x, y, window_size=5)
    assert dist.shape == (1, 32, 32)
    assert dist[0, :12, :12].abs().max() < 1e-4
    assert dist[0, 24:, 24:].min() > 0.5


def test_focal_loss_with_gamma_zero_is_cross_entropy_and_focuses_otherwise():
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 8, 8)
    target = torch.randint(0, 2, (2, 8, 8))
    ce = F.cross_entropy(logits, target)
    assert torch.allclose(FocalLoss(gamma=0.0)(logits, target), ce, atol=1e-5)
    # gamma > 0 down-weights every pixel by (1 - p_t)^gamma < 1.
    assert FocalLoss(gamma=2.0)(logits, target) < ce
    bce = F.binary_cross_entropy_with_logits(logits[:, 1], target.float())
    assert torch.allclose(FocalLoss(gamma=0.0, use_sigmoid=True)(logits[:, 1], target), bce)
    alpha = FocalLoss(alpha=0.25, gamma=0.0, use_sigmoid=True, loss_weight=2.0)
    pos, neg = target.bool(), ~target.bool()
    per_pixel = F.binary_cross_entropy_with_logits(logits[:, 1], target.float(), reduction="none")
    expected = 2.0 * (0.25 * per_pixel * pos + 0.75 * per_pixel * neg).mean()
    assert torch.allclose(alpha(logits[:, 1], target), expected, atol=1e-6)
