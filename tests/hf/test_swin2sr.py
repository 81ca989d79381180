"""Swin2SR super-resolution: PSNR/SSIM on known answers, the wrapper's L1 loss and
bicubic residual, and the tiny config through ``adtool.apis.run`` (train, test, infer)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import BaseDataElement
from PIL import Image

pytest.importorskip("transformers")

from adtool.apis import load_config, run  # noqa: E402
from adtool.apis.tasks import infer_task  # noqa: E402
from adtool.datasets.hf import make_sr_dataset  # noqa: E402
from adtool.errors import DataError  # noqa: E402
from adtool.evaluation.metrics.super_resolution import (  # noqa: E402
    PSNR_CAP,
    SuperResolutionMetric,
    psnr_per_image,
    rgb_to_y,
    ssim_per_image,
)
from adtool.models.hf import Swin2SRSuperResolution  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "swin2sr" / "swin2sr_tiny_x2.py"
FULL = ROOT / "configs" / "swin2sr" / "swin2sr_x2_div2k.py"


@pytest.fixture(scope="module")
def sr_data(tmp_path_factory):
    """Generated SR pairs: 8 train / 4 val HR images of 48 px with LR_x2 files."""
    root = tmp_path_factory.mktemp("hf_sr")
    return make_sr_dataset(root, n_train=8, n_val=4, size=48)


# ------------------------------------------------------------------ metric functions


def test_psnr_identical_images_is_capped():
    img = torch.rand(2, 3, 16, 16)
    assert torch.equal(psnr_per_image(img, img), torch.full((2,), PSNR_CAP))


def test_psnr_of_a_known_error():
    target = 0.2 + 0.6 * torch.rand(1, 3, 16, 16)
    # A uniform error of 0.1 on a [0, 1] range: MSE 0.01 -> 20 dB exactly.
    assert float(psnr_per_image(target + 0.1, target)[0]) == pytest.approx(20.0, abs=1e-4)
    noise = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 0.05
    mse = float((noise**2).mean())
    expected = 10 * math.log10(1.0 / mse)  # ~26 dB for sigma 0.05
    assert float(psnr_per_image(0.5 + noise, torch.full_like(noise, 0.5))[0]) == pytest.approx(
        expected, abs=1e-3
    )


def test_ssim_identical_is_one_and_noise_lowers_it():
    img = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert float(ssim_per_image(img, img)[0]) == pytest.approx(1.0, abs=1e-6)
    noisy = (img + 0.2 * torch.randn_like(img)).clamp(0, 1)
    assert float(ssim_per_image(noisy, img)[0]) < 0.9


def test_y_channel_is_bt601_luma():
    white, black = torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    assert torch.allclose(rgb_to_y(white), torch.full((1, 1, 2, 2), 235 / 255), atol=1e-3)
    assert torch.allclose(rgb_to_y(black), torch.full((1, 1, 2, 2), 16 / 255))


def test_metric_reports_model_and_bicubic_baseline():
    gen = torch.Generator().manual_seed(0)
    lr = torch.randint(0, 256, (2, 3, 12, 12), dtype=torch.uint8, generator=gen)
    bicubic = F.interpolate(lr.float() / 255, scale_factor=2, mode="bicubic").clamp(0, 1)
    gt = torch.stack([bicubic[0], bicubic[1].clamp(0, 0.9)])
    # Image 0 predicted perfectly; image 1 off by 0.1 everywhere (20 dB).
    preds = [gt[0], gt[1] + 0.1]
    samples = [
        {"pred_img": p, "gt_img": g, "img_path": f"img{i}.png"}
        for i, (p, g) in enumerate(zip(preds, gt))
    ]
    metric = SuperResolutionMetric()
    metric.process({"inputs": list(lr)}, samples)
    flat = metric.compute_metrics(metric.results)
    assert set(flat) == {"PSNR", "SSIM"}
    assert flat["PSNR"] == pytest.approx((PSNR_CAP + 20.0) / 2, abs=1e-3)
    th = metric.last_report["thresholds"]
    assert th["worst_images"][0]["img_path"] == "img1.png"
    assert th["psnr_per_image"]["max"] == PSNR_CAP
    assert th["psnr_per_image"]["min"] == pytest.approx(20.0, abs=1e-3)
    # The baseline is the bicubic upscale of the LR input: image 0's ground truth itself.
    bicubic_1 = float(psnr_per_image(bicubic[1:], gt[1:])[0])
    assert th["bicubic"]["PSNR"] == pytest.approx((PSNR_CAP + bicubic_1) / 2, abs=1e-3)
    assert th["gain_over_bicubic_dB"] == pytest.approx((20.0 - bicubic_1) / 2, abs=1e-3)
    assert th["fraction_better_than_bicubic"] == (0.5 if bicubic_1 < 20.0 else 0.0)


def test_metric_crop_border_ignores_the_edges():
    gt = torch.rand(1, 3, 16, 16)
    pred = gt.clone()
    pred[..., :2, :] = 1 - pred[..., :2, :]  # wrong only within 2 px of the top edge
    metric = SuperResolutionMetric(crop_border=2)
    psnr, ssim = metric.scores(pred, gt)
    assert float(psnr[0]) == PSNR_CAP
    psnr_full, _ = SuperResolutionMetric().scores(pred, gt)
    assert float(psnr_full[0]) < 30


# ------------------------------------------------------------------ wrapper


def _tiny_model():
    cfg = load_config(TINY)
    model_cfg = dict(cfg.model)
    model_cfg.pop("type")
    return Swin2SRSuperResolution(**model_cfg)


def test_residual_model_starts_at_bicubic_and_loss_is_l1():
    torch.manual_seed(0)
    model = _tiny_model()
    lr = torch.rand(2, 3, 16, 24)
    bicubic = F.interpolate(lr, scale_factor=2, mode="bicubic", align_corners=False)
    assert torch.allclose(model(lr, mode="tensor"), bicubic, atol=1e-6)
    gt = torch.rand(2, 3, 32, 48)
    samples = [BaseDataElement(gt_img=g) for g in gt]
    loss = model(lr, samples, mode="loss")["loss"]
    assert float(loss.detach()) == pytest.approx(float((bicubic - gt).abs().mean()), rel=1e-5)
    preds = model(
        lr, [BaseDataElement(metainfo={"img_shape": (16, 24)}) for _ in range(2)], mode="predict"
    )
    assert torch.allclose(preds[0].pred_img, bicubic[0].clamp(0, 1), atol=1e-6)


def test_predict_crops_padding_of_smaller_images():
    model = _tiny_model()
    lr = torch.rand(1, 3, 16, 16)
    sample = BaseDataElement(metainfo={"img_shape": (10, 12)})
    (pred,) = model(lr, [sample], mode="predict")
    assert pred.pred_img.shape == (3, 20, 24)


def test_hr_target_of_wrong_size_is_a_data_error():
    model = _tiny_model()
    with pytest.raises(DataError, match="not 2x"):
        model(
            torch.rand(1, 3, 16, 16), [BaseDataElement(gt_img=torch.rand(3, 30, 30))], mode="loss"
        )


def test_full_config_builds_from_local_folder(tmp_path, monkeypatch):
    """swin2sr_x2_div2k reads backbones/hf/swin2SR-classical-sr-x2-64 (a mini stand-in)."""
    from transformers import Swin2SRConfig, Swin2SRForImageSuperResolution

    folder = tmp_path / "backbones" / "hf" / "swin2SR-classical-sr-x2-64"
    mini = Swin2SRConfig(embed_dim=12, depths=[1], num_heads=[2], window_size=4, upscale=2)
    Swin2SRForImageSuperResolution(mini).save_pretrained(folder)
    monkeypatch.chdir(tmp_path)
    model_cfg = dict(load_config(FULL).model)
    model_cfg.pop("type")
    model = Swin2SRSuperResolution(**model_cfg)
    assert model.residual is None and model.model.config.embed_dim == 12
    assert model(torch.rand(1, 3, 8, 8), mode="tensor").shape == (1, 3, 16, 16)


# ------------------------------------------------------------------ end to end


def test_tiny_config_trains_tests_infers(sr_data, tmp_path):
    work = tmp_path / "work"
    options = {
        "train_cfg.max_epochs": 1,
        "param_scheduler.1.end": 1,
        "train_dataloader.batch_size": 4,
    }
    run(str(TINY), data_root=sr_data, work_dir=work, cfg_options=options)
    for name in ("config.py", "epoch_1.pth", "results.json", "results.txt", "psnr_histogram.png"):
        assert (work / name).is_file(), name
    assert len(list((work / "pictures").glob("*.png"))) == 4
    on_disk = json.loads((work / "results.json").read_text())
    assert on_disk["task"] == "super_resolution" and on_disk["model"] == "Swin2SRSuperResolution"
    assert on_disk["dataset"] == "sr_pairs" and on_disk["n_train"] == 8 and on_disk["n_test"] == 4
    assert set(on_disk["metrics"]) == {"PSNR", "SSIM"}
    assert on_disk["train"]["iters"] == 2
    th = on_disk["thresholds"]
    psnr = on_disk["metrics"]["PSNR"]
    assert th["psnr_per_image"]["mean"] == pytest.approx(psnr)
    assert 15 < th["bicubic"]["PSNR"] < 40 and 0 < on_disk["metrics"]["SSIM"] <= 1
    # One epoch from a bicubic start stays close to bicubic.
    assert abs(th["gain_over_bicubic_dB"]) < 1.0
    assert "bicubic baseline" in (work / "results.txt").read_text()

    # LR made on the fly (no LR_x2 folder) gives the same bicubic baseline.
    no_lr = make_sr_dataset(tmp_path / "nolr", n_train=8, n_val=4, size=48, write_lr=False)
    tested = run(
        str(TINY), data_root=no_lr, work_dir=tmp_path / "test", checkpoint=str(work / "epoch_1.pth")
    )[0]
    assert tested["thresholds"]["bicubic"]["PSNR"] == pytest.approx(th["bicubic"]["PSNR"])
    assert tested["metrics"]["PSNR"] == pytest.approx(psnr, abs=1e-4)

    # Inference takes the low-resolution image and writes the x2 image.
    lr_file = sr_data / "val" / "LR_x2" / "00000.png"
    summary = infer_task(load_config(TINY), work / "epoch_1.pth", lr_file, tmp_path / "infer")
    out = np.asarray(Image.open(summary["predictions"][0]["output"]))
    assert out.shape == (48, 48, 3)
    assert (tmp_path / "infer" / "predictions.csv").read_text().count("\n") == 2


@pytest.mark.quality
def test_tiny_swin2sr_beats_bicubic_on_the_generated_set(tmp_path):
    """Quality floor: PSNR gain over bicubic >= 0.1 dB, better on >= 60% of the images.

    make_sr_dataset defaults (200 train / 40 val, 64 px HR, x2), swin2sr_tiny_x2 for 4
    epochs (52 iterations of batch 16, 24 px LR crops), 1 torch thread, through run():
    PSNR 26.44 dB vs bicubic 26.19 (+0.25 dB), better on 87.5% of the images, SSIM 0.864
    vs 0.860; train 24 s. The model starts exactly at bicubic (gain 0.0) and 10 or 20
    epochs give no more (+0.24 / +0.22 dB): the x2 detail of this set is largely aliased
    away in the LR images.
    Command: .venv/bin/pytest tests/hf/test_swin2sr.py -m quality
    """
    root = make_sr_dataset(tmp_path / "data")
    options = {"train_cfg.max_epochs": 4, "param_scheduler.1.end": 4}
    result = run(str(TINY), data_root=root, work_dir=tmp_path / "work", cfg_options=options)[0]
    th = result["thresholds"]
    assert th["gain_over_bicubic_dB"] >= 0.1
    assert th["fraction_better_than_bicubic"] >= 0.6
