"""Loading any image mode, mask binarisation and the geometric transforms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import adtool.datasets  # noqa: F401  (registers everything)
from adtool.datasets.transforms import (
    CenterCrop,
    LoadAnomalyImage,
    LoadAnomalyMask,
    PackAnomalyInputs,
    RandomHorizontalFlip,
    RandomRotation,
    RandomVerticalFlip,
    Resize,
)
from adtool.errors import ConfigError
from adtool.registry import TRANSFORMS


def load(tmp_path: Path, image: Image.Image, name: str = "img.png", **kwargs) -> dict:
    path = tmp_path / name
    image.save(path)
    return LoadAnomalyImage(**kwargs)({"img_path": str(path)})


def test_rgb_passes_through_with_shapes(tmp_path):
    arr = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    out = load(tmp_path, Image.fromarray(arr))
    assert out["img"].dtype == np.uint8 and np.array_equal(out["img"], arr)
    assert out["ori_shape"] == (2, 3) and out["img_shape"] == (2, 3)


def test_grey_and_one_bit_become_rgb(tmp_path):
    out = load(tmp_path, Image.fromarray(np.array([[0, 77]], np.uint8)))
    assert out["img"].shape == (1, 2, 3)
    assert out["img"][0, 1].tolist() == [77, 77, 77]
    out = load(tmp_path, Image.fromarray(np.array([[0, 1]], bool)), "bit.png")
    assert out["img"][0].tolist() == [[0, 0, 0], [255, 255, 255]]


def test_rgba_and_la_are_composited_on_black(tmp_path):
    rgba = np.array([[[200, 100, 50, 255], [200, 100, 50, 0], [200, 100, 50, 128]]], np.uint8)
    out = load(tmp_path, Image.fromarray(rgba, "RGBA"))
    assert out["img"][0].tolist() == [[200, 100, 50], [0, 0, 0], [100, 50, 25]]
    la = Image.fromarray(np.array([[[90, 255], [90, 0]]], np.uint8), "LA")
    assert load(tmp_path, la)["img"][0].tolist() == [[90, 90, 90], [0, 0, 0]]


def test_palette_with_and_without_transparency(tmp_path):
    image = Image.fromarray(np.array([[0, 1]], np.uint8), "P")
    image.putpalette([10, 20, 30, 200, 150, 100] + [0] * 762)
    assert load(tmp_path, image)["img"][0].tolist() == [[10, 20, 30], [200, 150, 100]]
    image.info["transparency"] = 0
    out = load(tmp_path, image, "transparent.png")
    assert out["img"][0].tolist() == [[0, 0, 0], [200, 150, 100]]


def test_sixteen_bit_scales_by_65535_or_by_max(tmp_path):
    arr = np.array([[0, 257 * 100, 65535, 257 * 20]], np.uint16)
    image = Image.fromarray(arr)
    assert image.mode == "I;16"
    out = load(tmp_path, image)
    assert out["img"].dtype == np.uint8
    assert out["img"][0, :, 0].tolist() == [0, 100, 255, 20]
    half = Image.fromarray(np.array([[0, 1000, 2000]], np.uint16))
    assert load(tmp_path, half, high_bit_scale="max")["img"][0, :, 1].tolist() == [0, 128, 255]
    as_int = Image.fromarray(np.array([[0, 65535]], np.int32))
    assert as_int.mode == "I"
    assert load(tmp_path, as_int, "i32.tif")["img"][0, :, 2].tolist() == [0, 255]


def test_cmyk_becomes_rgb(tmp_path):
    image = Image.new("CMYK", (2, 1), (0, 0, 0, 0))
    image.putpixel((1, 0), (0, 255, 255, 0))
    out = load(tmp_path, image, "cmyk.tif")
    assert out["img"][0].tolist() == [[255, 255, 255], [255, 0, 0]]


def test_unknown_high_bit_scale_is_config_error():
    with pytest.raises(ConfigError, match="high_bit_scale"):
        LoadAnomalyImage(high_bit_scale="auto")


def test_mask_binarised_and_resized_to_image(tmp_path):
    mask = np.zeros((4, 4), np.uint8)
    mask[0, 0], mask[0, 1], mask[3, 3] = 3, 255, 1
    Image.fromarray(mask).save(tmp_path / "m.png")
    results = {"mask_path": str(tmp_path / "m.png"), "gt_label": 1, "img_shape": (4, 4)}
    out = LoadAnomalyMask()(dict(results))
    assert out["gt_mask"].dtype == np.uint8
    assert np.array_equal(out["gt_mask"], (mask > 0).astype(np.uint8))
    out = LoadAnomalyMask()(dict(results, img_shape=(8, 8)))
    assert out["gt_mask"].shape == (8, 8) and int(out["gt_mask"].sum()) == 12
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[1, 1, 2] = 9
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    out = LoadAnomalyMask()(dict(results, mask_path=str(tmp_path / "rgb.png"), img_shape=(2, 2)))
    assert out["gt_mask"].tolist() == [[0, 0], [0, 1]]


def test_mask_absent_or_zero_without_mask_path():
    base = {"mask_path": None, "img_shape": (3, 5)}
    normal = LoadAnomalyMask()(dict(base, gt_label=0, has_masks=True))
    assert normal["gt_mask"].shape == (3, 5) and normal["gt_mask"].sum() == 0
    assert "gt_mask" not in LoadAnomalyMask()(dict(base, gt_label=0, has_masks=False))
    assert "gt_mask" not in LoadAnomalyMask()(dict(base, gt_label=1, has_masks=False))
    with pytest.raises(ConfigError, match="LoadAnomalyImage before"):
        LoadAnomalyMask()({"mask_path": None, "gt_label": 0})


def sample_results(h: int = 4, w: int = 4) -> dict:
    img = np.arange(h * w * 3, dtype=np.uint8).reshape(h, w, 3)
    mask = np.zeros((h, w), np.uint8)
    mask[:, : w // 2] = 1
    return {"img": img, "gt_mask": mask, "img_shape": (h, w)}


def test_resize_mask_is_nearest_and_binary():
    out = Resize((8, 6))(sample_results())
    assert out["img"].shape == (8, 6, 3) and out["img_shape"] == (8, 6)
    assert out["gt_mask"].shape == (8, 6)
    expected = np.zeros((8, 6), np.uint8)
    expected[:, :3] = 1
    assert np.array_equal(out["gt_mask"], expected)
    rng = np.random.default_rng(0)
    noisy = {"img": np.zeros((50, 50, 3), np.uint8), "gt_mask": rng.integers(0, 2, (50, 50))}
    noisy["gt_mask"] = noisy["gt_mask"].astype(np.uint8)
    assert set(np.unique(Resize(17)(noisy)["gt_mask"])) <= {0, 1}


def test_resize_image_is_antialiased():
    checker = ((np.indices((64, 64)).sum(0) % 2) * 255).astype(np.uint8)
    out = Resize(16)({"img": np.repeat(checker[..., None], 3, 2)})
    # Without antialiasing a 1-pixel checkerboard aliases to 0 or 255.
    assert np.all(np.abs(out["img"].astype(int) - 128) <= 2)


def test_center_crop_and_pad():
    out = CenterCrop(2)(sample_results())
    assert np.array_equal(out["img"], sample_results()["img"][1:3, 1:3])
    assert out["gt_mask"].tolist() == [[1, 0], [1, 0]] and out["img_shape"] == (2, 2)
    out = CenterCrop((6, 4))(sample_results())
    assert out["img"].shape == (6, 4, 3) and out["img"][0].sum() == 0 and out["img"][5].sum() == 0
    assert out["gt_mask"].shape == (6, 4)


def test_flips_move_image_and_mask_together():
    res = sample_results()
    out = RandomHorizontalFlip(prob=1.0)(sample_results())
    assert np.array_equal(out["img"], res["img"][:, ::-1])
    assert out["gt_mask"][:, 2:].all() and not out["gt_mask"][:, :2].any()
    out = RandomVerticalFlip(prob=1.0)(sample_results())
    assert np.array_equal(out["img"], res["img"][::-1])
    assert np.array_equal(RandomHorizontalFlip(prob=0.0)(sample_results())["img"], res["img"])
    with pytest.raises(ConfigError):
        RandomVerticalFlip(prob=2)


def test_rotation_keeps_mask_aligned_with_image():
    img = np.zeros((9, 9, 3), np.uint8)
    img[1, 4] = 255
    mask = np.zeros((9, 9), np.uint8)
    mask[1, 4] = 1
    out = RandomRotation(degrees=(90, 90))({"img": img, "gt_mask": mask, "img_shape": (9, 9)})
    # PIL rotates counter-clockwise: the top-centre pixel goes to the left-centre.
    assert out["img"][4, 1].tolist() == [255, 255, 255]
    assert out["gt_mask"][4, 1] == 1 and out["gt_mask"].sum() == 1
    out = RandomRotation(degrees=10)(sample_results(16, 16))
    assert out["img"].shape == (16, 16, 3) and set(np.unique(out["gt_mask"])) <= {0, 1}


def test_pack_inputs_and_sample():
    res = dict(
        sample_results(),
        img_path="a.png",
        defect_type="scratch",
        category="bottle",
        ori_shape=(4, 4),
        gt_label=1,
        mask_path="m.png",
    )
    out = PackAnomalyInputs()(res)
    assert out["inputs"].shape == (3, 4, 4) and out["inputs"].dtype == torch.uint8
    assert torch.equal(out["inputs"][:, 1, 2], torch.from_numpy(res["img"][1, 2]))
    sample = out["data_samples"]
    assert set(sample.metainfo) == {"img_path", "defect_type", "category", "ori_shape", "img_shape"}
    assert sample.gt_label.dtype == torch.long and int(sample.gt_label) == 1
    assert sample.gt_mask.dtype == torch.uint8 and int(sample.gt_mask.sum()) == 8
    res.pop("gt_mask")
    assert "gt_mask" not in PackAnomalyInputs()(res)["data_samples"]


def test_transforms_build_from_registry_and_refuse_typos():
    assert isinstance(TRANSFORMS.build(dict(type="Resize", size=8)), Resize)
    with pytest.raises(ConfigError, match="did you mean 'size'"):
        TRANSFORMS.build(dict(type="Resize", sise=8))
    with pytest.raises(ConfigError, match="size"):
        Resize((8,))
