"""Perlin noise and masks (shared by the synthetic-anomaly methods) and their transform."""

import numpy as np
import pytest
import torch

from adtool.errors import ConfigError
from adtool.models.components.perlin import perlin_mask, perlin_noise
from adtool.registry import TRANSFORMS


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_noise_is_smooth_and_zero_at_lattice_nodes():
    noise = perlin_noise(1, (65, 65), (4, 4), _gen(0))
    assert noise.shape == (1, 65, 65)
    # Neighbouring pixels differ by far less than the noise's spread.
    step = (noise[:, 1:] - noise[:, :-1]).abs().max()
    assert step < 0.2 * (noise.max() - noise.min())
    # With one cell the lattice nodes are the image corners, where Perlin noise is 0:
    # the corner pixels (half a pixel from the node) are close to it.
    corners = perlin_noise(3, (256, 256), (1, 1), _gen(1))[:, [0, -1]][:, :, [0, -1]]
    assert corners.abs().max() < 0.02


def test_noise_per_image_resolution_matches_single_image_calls():
    res = torch.tensor([[1, 2], [8, 8], [3, 5]])
    batch = perlin_noise(3, (40, 48), res, _gen(2))
    assert batch.shape == (3, 40, 48) and batch.abs().max() <= 1.0
    # Coarser images read the corner of the shared gradient lattice: the image with res
    # (1, 2) only depends on 2x3 gradients, so it is smooth at a scale of 20+ px.
    assert (batch[0, 1:] - batch[0, :-1]).abs().max() < (batch[1, 1:] - batch[1, :-1]).abs().max()


def test_masks_are_binary_reproducible_and_cover_the_fraction():
    masks = perlin_mask(16, (64, 64), fraction=0.25, generator=_gen(3))
    assert masks.shape == (16, 64, 64)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    # Each mask covers the requested share (up to ties at the quantile).
    assert torch.allclose(masks.mean((1, 2)), torch.full((16,), 0.25), atol=2 / 64**2)
    again = perlin_mask(16, (64, 64), fraction=0.25, generator=_gen(3))
    assert torch.equal(masks, again)
    other = perlin_mask(16, (64, 64), fraction=0.25, generator=_gen(4))
    assert not torch.equal(masks, other)
    for fraction in (0.01, 0.5, 1.0):
        m = perlin_mask(4, (32, 48), fraction=fraction, generator=_gen(5))
        assert torch.allclose(m.mean((1, 2)), torch.full((4,), fraction), atol=2 / (32 * 48))


def test_threshold_masks_follow_the_noise_and_their_scale():
    # Without a fraction, DRAEM's rule: noise > 0.5, so the mask is a strict minority.
    masks = perlin_mask(32, (64, 64), generator=_gen(6))
    covered = masks.mean((1, 2))
    assert 0.0 < covered.mean() < 0.3
    # A coarse lattice gives few large blobs, a fine one many small ones (more edges).
    coarse = perlin_mask(8, (64, 64), 0.3, min_scale=0, max_scale=1, generator=_gen(7))
    fine = perlin_mask(8, (64, 64), 0.3, min_scale=4, max_scale=5, generator=_gen(7))

    def edges(m):
        return (m[:, 1:] != m[:, :-1]).float().sum() + (m[:, :, 1:] != m[:, :, :-1]).float().sum()

    assert edges(fine) > 4 * edges(coarse)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="fraction"):
        perlin_mask(1, (8, 8), fraction=1.5)
    with pytest.raises(ValueError, match="min_scale"):
        perlin_mask(1, (8, 8), min_scale=3, max_scale=3)
    with pytest.raises(ConfigError, match="fraction"):
        TRANSFORMS.build(dict(type="PerlinAnomalyMask", fraction=0.0))


def test_transform_adds_a_mask_of_the_image_size_seeded_by_numpy():
    transform = TRANSFORMS.build(dict(type="PerlinAnomalyMask", fraction=0.1))
    img = np.zeros((48, 40, 3), np.uint8)
    np.random.seed(0)
    first = transform(dict(img=img))["anomaly_mask"]
    np.random.seed(0)
    second = transform(dict(img=img))["anomaly_mask"]
    assert first.shape == (48, 40) and first.dtype == np.float32
    assert np.array_equal(first, second)
    assert abs(first.mean() - 0.1) < 2 / (48 * 40)
    never = TRANSFORMS.build(dict(type="PerlinAnomalyMask", prob=0.0, key="m"))
    assert not never(dict(img=img))["m"].any()
