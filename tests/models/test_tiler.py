"""Tiling: the Tiler's cut and stitch, and a model run on tiles (random weights)."""

import pytest
import torch

from adtool.apis import load_config
from adtool.errors import ConfigError
from adtool.models.components import Tiler
from adtool.models.components.tiler import tile_starts
from adtool.registry import MODELS
from adtool.structures import AnomalyDataSample


def test_tile_starts_step_by_stride_and_end_at_the_border():
    assert tile_starts(100, 32, 32) == [0, 32, 64, 68]
    assert tile_starts(96, 32, 32) == [0, 32, 64]
    assert tile_starts(100, 32, 24) == [0, 24, 48, 68]
    assert tile_starts(32, 32, 16) == [0]
    with pytest.raises(ConfigError, match="smaller than the tile"):
        tile_starts(31, 32, 32)


def test_bad_tiling_settings_are_one_line_errors():
    with pytest.raises(ConfigError, match="larger than tile_size"):
        Tiler(32, stride=40)
    with pytest.raises(ConfigError, match="tile_size must be a positive int"):
        Tiler(0)


@pytest.mark.parametrize(("size", "tile", "stride"), [((100, 70), 32, 24), ((64, 64), 32, None)])
def test_untile_of_tile_gives_the_image_back(size, tile, stride):
    tiler = Tiler(tile, stride)
    images = torch.randn(2, 3, *size)
    tiles = tiler.tile(images)
    assert tiles.shape == (2 * tiler.num_tiles(size), 3, tile, tile)
    # Image by image, row by row: tile k of image 1 is its k-th box.
    top, left = tiler.boxes(size)[1]
    assert torch.equal(
        tiles[tiler.num_tiles(size) + 1], images[1, :, top : top + tile, left : left + tile]
    )
    assert torch.allclose(tiler.untile(tiles, size), images, atol=1e-6)


def test_stitched_maps_average_where_tiles_overlap():
    tiler = Tiler(4, stride=2)  # 6 px side: tiles at 0 and 2 along each axis
    boxes = tiler.boxes((6, 6))
    assert boxes == [(0, 0), (0, 2), (2, 0), (2, 2)]
    tiles = torch.stack([torch.full((4, 4), float(k)) for k in range(4)])
    stitched = tiler.untile(tiles, (6, 6))[0]
    assert stitched[0, 0] == 0 and stitched[0, 5] == 1 and stitched[5, 0] == 2
    assert stitched[0, 3] == 0.5  # tiles 0 and 1
    assert stitched[3, 3] == (0 + 1 + 2 + 3) / 4  # all four
    scores = torch.tensor([0.1, 0.7, 0.3, 0.2, 0.5, 0.4, 0.9, 0.0])
    assert torch.equal(tiler.tile_scores(scores, (6, 6)), torch.tensor([0.7, 0.9]))


def _patchcore(tiling):
    cfg = load_config(
        "patchcore_effnetlite0_sample",
        {"model.backbone.weights": None, "model.data_preprocessor.tiling": tiling},
    )
    torch.manual_seed(0)
    return MODELS.build(cfg.model).eval()


def test_a_tiled_model_scores_each_tile_and_stitches_its_maps():
    model = _patchcore(dict(tile_size=32, stride=16))
    images = torch.randint(0, 256, (2, 3, 64, 64)).float()
    batch = {"inputs": list(images.to(torch.uint8)), "data_samples": None}
    model.fit_step(batch)
    model.fit()
    # Other images at test: a patch's distance to itself (0) is where the square root of
    # the expanded squared distance turns rounding into visible differences.
    test = {"inputs": list(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8))}
    inputs = model.data_preprocessor(test, False)["inputs"]
    scores, maps = model.outputs(inputs)
    # All 18 tiles in one forward here, 2 at a time in outputs(): a CPU convolution's
    # result may differ in the last digits with the batch it runs in.
    tile_scores, tile_maps = model.anomaly_outputs(model.tiler.tile(inputs))
    assert maps.shape == (2, 64, 64)
    assert torch.allclose(maps, model.tiler.untile(tile_maps, (64, 64)), atol=1e-4)
    assert torch.allclose(scores, tile_scores.view(2, 9).amax(1), atol=1e-4)
    samples = model.predict(inputs, None)
    assert torch.equal(torch.stack([s.pred_score for s in samples]), scores)


def test_training_tiles_carry_their_crop_of_the_mask():
    model = _patchcore(dict(tile_size=32))
    inputs = torch.randn(1, 3, 64, 64)
    sample = AnomalyDataSample(metainfo={"img_path": "a.png", "img_shape": (64, 64)})
    mask = torch.zeros(64, 64, dtype=torch.uint8)
    mask[40:50, 10:20] = 1
    sample.gt_mask = mask
    sample.gt_label = 1
    tiles, samples = model.tile_batch(inputs, [sample])
    assert tiles.shape == (4, 3, 32, 32) and len(samples) == 4
    assert [s.tile_index for s in samples] == [0, 1, 2, 3]
    assert all(s.img_shape == (32, 32) and s.img_path == "a.png" for s in samples)
    assert [int(s.gt_mask.sum()) for s in samples] == [0, 0, 100, 0]
    assert torch.equal(samples[2].gt_mask, mask[32:, :32])
    assert all(int(s.gt_label) == 1 for s in samples)
    assert int(sample.gt_mask.sum()) == 100  # the original is untouched


def test_a_method_that_reads_whole_images_refuses_tiling():
    cfg = load_config("ganomaly_sample", {"model.data_preprocessor.tiling": dict(tile_size=32)})
    with pytest.raises(ConfigError, match="GANomaly does not support tiling"):
        MODELS.build(cfg.model)


def test_a_misspelt_tiling_key_is_refused_by_name():
    with pytest.raises(ConfigError, match="did you mean 'tiling'"):
        load_config("patchcore_effnetlite0_mvtec", {"model.data_preprocessor.tilling": 256})


def test_a_method_with_its_own_predict_refuses_tiling():
    cfg = load_config(
        "uflow_effnetlite0_sample",
        {"model.backbone.weights": None, "model.data_preprocessor.tiling": dict(tile_size=64)},
    )
    with pytest.raises(ConfigError, match="UFlow does not support tiling"):
        MODELS.build(cfg.model)
