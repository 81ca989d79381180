"""CFA: memory initialisation, the soft-boundary loss, CoordConv and the softmin map."""

import pytest
import torch
import torch.nn.functional as F

from adtool.errors import ConfigError
from adtool.models.anomaly.cfa import CFA, CFALoss, CoordConv2d, PatchDescriptor
from adtool.models.anomaly.cfa.model import compress_memory, softmin_score, squared_distances
from adtool.structures import AnomalyDataSample


def _model(**kwargs) -> CFA:
    cfg = dict(
        backbone=dict(type="TimmBackbone", arch="resnet18", out_indices=(1, 2, 3), weights=None),
        descriptor=dict(type="PatchDescriptor", gamma_d=4),
        loss=dict(type="CFALoss"),
        data_preprocessor=dict(type="AnomalyDataPreprocessor", mean=[127.5] * 3, std=[127.5] * 3),
    )
    cfg.update(kwargs)
    return CFA(**cfg)


def _batch(images: torch.Tensor) -> dict:
    return dict(inputs=list(images), data_samples=[AnomalyDataSample() for _ in images])


def test_memory_bank_is_the_per_position_mean_of_the_training_descriptors():
    torch.manual_seed(0)
    model = _model()
    images = torch.randint(0, 256, (7, 3, 32, 32), dtype=torch.uint8)
    # Batches of 5 and 2: a running mean of batch means (the official code) would weight
    # the last two images 5/2 times too much.
    model.before_train([_batch(images[:5]), _batch(images[5:])])
    desc = model.describe((images.float() - 127.5) / 127.5)  # (7, C, 8, 8)
    c, h, w = desc.shape[1:]
    assert c == (64 + 128 + 256) // 4 and (h, w) == (8, 8)
    expected = desc.mean(0).permute(1, 2, 0).reshape(h * w, c)
    assert model.memory_bank.shape == (64, c)
    assert torch.allclose(model.memory_bank, expected, atol=1e-5)
    # Position (i, j) is row i * w + j.
    assert torch.allclose(model.memory_bank[2 * w + 5], desc[:, :, 2, 5].mean(0), atol=1e-5)
    # A second call (after a resume) keeps the bank the descriptor was trained towards.
    before = model.memory_bank.clone()
    model.before_train([_batch(images[:1])])
    assert torch.equal(model.memory_bank, before)


def test_memory_bank_round_trips_through_the_state_dict():
    torch.manual_seed(0)
    model = _model()
    with pytest.raises(RuntimeError, match="no memory bank"):
        model.anomaly_outputs(torch.zeros(1, 3, 32, 32))
    model.before_train([_batch(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))])
    fresh = _model()
    fresh.load_state_dict(model.state_dict())
    x = torch.randn(2, 3, 32, 32)
    model.eval(), fresh.eval()
    assert torch.equal(model.anomaly_outputs(x)[1], fresh.anomaly_outputs(x)[1])


def test_gamma_c_compresses_the_memory_by_kmeans():
    memory = torch.cat([torch.randn(10, 4) * 0.01, torch.randn(10, 4) * 0.01 + 5])
    centres = compress_memory(memory, gamma_c=10)
    assert centres.shape == (2, 4)
    # The two clusters' means, in some order.
    got = sorted(centres[:, 0].tolist())
    assert got[0] == pytest.approx(memory[:10, 0].mean().item(), abs=1e-5)
    assert got[1] == pytest.approx(memory[10:, 0].mean().item(), abs=1e-5)
    assert compress_memory(memory, 1) is memory


def test_loss_is_zero_for_a_feature_at_a_centroid_inside_the_radius():
    loss = CFALoss(num_nearest=3, num_hard_negatives=3, radius=1.0)
    # Three centroids within the radius (squared distances 0, 0.25, 0.81 from the first)
    # and three far ones (hard negatives beyond r^2 - alpha).
    memory = torch.tensor([[0.0, 0.0], [0.5, 0.0], [0.0, 0.9], [5.0, 0.0], [0.0, 6.0], [7.0, 7.0]])
    feature = memory[:1].view(1, 1, 2)  # exactly at a centroid
    terms = loss(squared_distances(feature, memory))
    assert terms["loss_att"].item() == 0 and terms["loss_rep"].item() == 0


def test_loss_values_and_radius_gradient():
    loss = CFALoss(num_nearest=2, num_hard_negatives=1, radius=1.0, alpha=0.1, nu=1e-3)
    # One descriptor; squared distances 0.5, 2.0 (nearest two), 0.95, then 9.
    d = torch.tensor([[[2.0, 9.0, 0.5, 0.95]]])
    terms = loss(d)
    # Attraction: mean(relu([0.5, 0.95] - 1)) = 0; repulsion of the 3rd nearest (2.0): 0.
    assert terms["loss_att"].item() == 0 and terms["loss_rep"].item() == 0
    loss.radius.data.fill_(0.5)  # r^2 = 0.25
    terms = loss(d)
    assert terms["loss_att"].item() == pytest.approx((0.25 + 0.7) / 2 / 1e-3)
    loss.radius.data.fill_(2.0)  # r^2 = 4: the hard negative (2.0) is inside by 2 - 0.1
    terms = loss(d)
    assert terms["loss_rep"].item() == pytest.approx((4 - 2.0 - 0.1) / 1e-3)
    sum(terms.values()).backward()
    assert loss.radius.grad.item() == pytest.approx(2 * 2.0 / 1e-3)  # d(r^2 - 2.1)/dr / nu
    assert not CFALoss(learn_radius=False).radius.requires_grad
    with pytest.raises(ConfigError, match="at least K \\+ J = 6 centroids"):
        CFALoss()(torch.zeros(1, 1, 5))


def test_map_score_is_the_softmin_weighted_nearest_distance():
    d = torch.tensor([[[3.0, 1.0, 2.0, 10.0]]])
    w = torch.exp(torch.tensor(-1.0)) / torch.exp(-torch.tensor([1.0, 2.0, 3.0])).sum()
    assert softmin_score(d, 3).item() == pytest.approx((w * 1.0).item(), rel=1e-6)
    assert softmin_score(d, 1).item() == pytest.approx(1.0)
    # Negative rounding error of |f|^2 + |c|^2 - 2 f.c is clamped to 0.
    assert softmin_score(torch.tensor([[[-1e-6, 4.0]]]), 2).item() == 0


def test_squared_distances_equal_cdist():
    f, m = torch.randn(2, 5, 3), torch.randn(7, 3)
    expected = torch.cdist(f, m.expand(2, -1, -1)).square()
    assert torch.allclose(squared_distances(f, m), expected, atol=1e-5)


def test_coordconv_appends_row_then_column_coordinates():
    grid = CoordConv2d.coordinates(torch.zeros(2, 5, 3, 4))
    assert grid.shape == (2, 2, 3, 4)
    assert torch.allclose(grid[0, 0, :, 0], torch.tensor([-1.0, 0.0, 1.0]))
    assert torch.allclose(grid[0, 1, 0], torch.tensor([-1.0, -1 / 3, 1 / 3, 1.0]))
    conv = CoordConv2d(5, 1)
    assert conv.conv.in_channels == 7
    # A 1x1 conv that reads only the row channel outputs the row coordinate.
    with torch.no_grad():
        conv.conv.weight.zero_()
        conv.conv.bias.zero_()
        conv.conv.weight[0, 5] = 1.0
    assert torch.allclose(conv(torch.randn(1, 5, 3, 4))[0, 0], grid[0, 0])


def test_descriptor_pools_each_level_and_resizes_to_the_first_grid():
    desc = PatchDescriptor(in_channels=[2, 3], gamma_d=1)
    assert desc.out_channels == 5
    feats = [torch.randn(1, 2, 8, 8), torch.randn(1, 3, 4, 4)]
    with torch.no_grad():
        desc.projection.conv.weight.zero_()
        desc.projection.conv.bias.zero_()
        for i in range(5):
            desc.projection.conv.weight[i, i] = 1.0  # identity on the feature channels
    out = desc(feats)
    assert out.shape == (1, 5, 8, 8)
    assert torch.allclose(out[:, :2], F.avg_pool2d(feats[0], 3, 1, 1), atol=1e-6)
    pooled = F.interpolate(F.avg_pool2d(feats[1], 3, 1, 1), size=(8, 8), mode="bilinear")
    assert torch.allclose(out[:, 2:], pooled, atol=1e-6)
    with pytest.raises(ConfigError, match="gamma_d"):
        PatchDescriptor(in_channels=[2], gamma_d=3)


def test_training_pulls_descriptors_into_the_hyperspheres():
    torch.manual_seed(0)
    model = _model()
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    model.before_train([_batch(images)])
    inputs = (images.float() - 127.5) / 127.5
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=5e-4
    )
    model.train()
    first = sum(model.loss(inputs, None).values()).item()
    for _ in range(15):
        opt.zero_grad()
        sum(model.loss(inputs, None).values()).backward()
        opt.step()
    assert sum(model.loss(inputs, None).values()).item() < 0.95 * first
    assert model.backbone.model.conv1.weight.grad is None  # frozen
