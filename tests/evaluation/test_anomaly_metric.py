"""AnomalyMetric fed AnomalyDataSample dicts, end to end."""

import numpy as np
import pytest
import torch

import adtool.evaluation  # noqa: F401  (registers AnomalyMetric)
from adtool.errors import ConfigError
from adtool.evaluation import AnomalyMetric
from adtool.registry import METRICS
from adtool.structures.anomaly_data_sample import AnomalyDataSample

NORMAL_SCORES = [0.1, 0.2, 0.3, 0.6]
ANOMALOUS_SCORES = [0.5, 0.7, 0.8, 0.9]  # 0.5 loses only to 0.6: AUROC 15/16


def _sample(i, label, score, size=32, with_map=True, with_mask=True, defect=None, as_dict=True):
    defect = defect or ("good" if label == 0 else ("crack", "scratch")[i % 2])
    s = AnomalyDataSample(
        metainfo=dict(
            img_path=f"/data/bottle/test/{defect}/{i:03d}.png",
            defect_type=defect,
            category="bottle",
            img_shape=(size, size),
            ori_shape=(size, size),
        )
    )
    s.gt_label = label
    s.pred_score = score
    mask = torch.zeros(size, size)
    if label:
        mask[4:12, 4:12] = 1
    if with_mask:
        s.gt_mask = mask
    if with_map:
        rng = torch.Generator().manual_seed(i)
        s.anomaly_map = 0.5 * torch.rand(size, size, generator=rng) + mask
    return s.to_dict() if as_dict else s


def _samples(**kwargs):
    return [_sample(i, 0, s, **kwargs) for i, s in enumerate(NORMAL_SCORES)] + [
        _sample(i + 4, 1, s, **kwargs) for i, s in enumerate(ANOMALOUS_SCORES)
    ]


def _run(samples, **cfg):
    metric = METRICS.build(dict(type="AnomalyMetric", **cfg))
    metric.process({}, samples[:3])
    metric.process({}, samples[3:])
    return metric, metric.evaluate(len(samples))


def test_end_to_end_values():
    metric, metrics = _run(_samples())
    assert isinstance(metric, AnomalyMetric)
    assert set(metrics) == {
        "image_AUROC", "image_AUPR", "image_F1_max", "pixel_AUROC", "pixel_AUPRO"
    }  # fmt: skip
    assert metrics["image_AUROC"] == pytest.approx(15 / 16)
    # Ranked 0.9 0.8 0.7 (+), 0.6 (-), 0.5 (+): AP = 3/4 * 1 + 1/4 * 4/5.
    assert metrics["image_AUPR"] == pytest.approx(0.75 + 0.25 * 0.8)
    # Threshold 0.5: P 4/5, R 1 -> F1 8/9 (0.7: P 1, R 3/4 -> 6/7).
    assert metrics["image_F1_max"] == pytest.approx(8 / 9)
    assert metrics["pixel_AUROC"] == pytest.approx(1.0)  # defects 1..1.5, background < 0.5
    assert metrics["pixel_AUPRO"] == pytest.approx(1.0)

    report = metric.last_report
    assert set(report) == {"image", "pixel", "thresholds", "confusion", "per_defect", "n_test"}
    assert report["n_test"] == 8
    assert report["per_defect"]["crack"]["n"] == 2
    assert report["per_defect"]["scratch"]["n"] == 2
    assert report["confusion"]["threshold"] == "f1_percentile"
    assert report["confusion"]["TP"] + report["confusion"]["FN"] == 4
    assert report["pixel"]["threshold"] == pytest.approx(1.0, abs=0.01)

    arrays = metric.last_arrays
    assert arrays["scores"].dtype == np.float32 and arrays["labels"].dtype == np.int64
    assert arrays["maps"].dtype == np.float16 and arrays["maps"].shape == (8, 32, 32)
    assert arrays["masks"].dtype == np.uint8 and int(arrays["masks"].sum()) == 4 * 64
    assert arrays["defect_types"][:4] == ["good"] * 4
    assert arrays["img_paths"][0].endswith("good/000.png")


def test_prefix_and_unknown_key():
    metric, metrics = _run(_samples(), prefix="val")
    assert "val/image_AUROC" in metrics
    with pytest.raises(ConfigError, match="fpr_limit"):
        METRICS.build(dict(type="AnomalyMetric", fpr_limmit=0.3))


def test_without_masks_pixel_is_none():
    metric, metrics = _run(_samples(with_mask=False))
    assert set(metrics) == {"image_AUROC", "image_AUPR", "image_F1_max"}
    assert metric.last_report["pixel"] is None
    assert metric.last_arrays["masks"] is None
    assert metric.last_arrays["maps"].shape == (8, 32, 32)


def test_without_maps_and_pixel_metrics_off():
    metric, _ = _run(_samples(with_map=False))
    assert metric.last_report["pixel"] is None and metric.last_arrays["maps"] is None
    metric, metrics = _run(_samples(), pixel_metrics=False)
    assert "pixel_AUROC" not in metrics and metric.last_report["pixel"] is None


def test_one_class_split_does_not_crash():
    samples = [_sample(i, 0, s) for i, s in enumerate(NORMAL_SCORES)]
    metric, metrics = _run(samples)
    assert metrics == {}
    report = metric.last_report
    assert report["image"]["AUROC"] is None
    assert report["pixel"]["AUROC"] is None and "note" in report["pixel"]
    assert report["thresholds"]["f1_percentile"]["value"] is None
    assert report["confusion"]["threshold"] == "percentile_95"
    assert report["per_defect"] == {}


def test_mixed_sizes_resized_to_most_common():
    samples = _samples()
    samples[1] = _sample(1, 0, NORMAL_SCORES[1], size=16)
    samples[5] = _sample(5, 1, ANOMALOUS_SCORES[1], size=64)
    metric, metrics = _run(samples)
    assert metric.last_arrays["maps"].shape == (8, 32, 32)
    assert metric.last_arrays["masks"][5].sum() == 16  # 8x8 defect at 64 -> 4x4 at 32
    assert metrics["pixel_AUROC"] == pytest.approx(1.0)


def test_channel_dim_and_missing_score():
    samples = _samples()
    samples[0]["anomaly_map"] = samples[0]["anomaly_map"][None]
    metric, _ = _run(samples)
    assert metric.last_arrays["maps"].shape == (8, 32, 32)
    del samples[0]["pred_score"]
    with pytest.raises(KeyError, match="pred_score"):
        AnomalyMetric().process({}, samples)


def test_maps_beyond_float16_range_stay_float32():
    samples = _samples()
    samples[2]["anomaly_map"] = samples[2]["anomaly_map"] * 1e6  # 65504 is float16's max
    metric, metrics = _run(samples)
    assert metric.last_arrays["maps"].dtype == np.float32
    assert np.isfinite(metric.last_arrays["maps"]).all()
    assert "pixel_AUROC" in metrics


def test_accepts_data_sample_objects():
    metric, metrics = _run(_samples(as_dict=False))
    assert metrics["image_AUROC"] == pytest.approx(15 / 16)


def test_metric_keeps_the_model_input_images_for_overlays():
    import numpy as np
    import torch

    from adtool.evaluation import AnomalyMetric
    from adtool.structures import AnomalyDataSample

    metric = AnomalyMetric(pixel_metrics=False)
    images = [torch.randint(0, 255, (3, 8, 8), dtype=torch.uint8) for _ in range(2)]
    samples = []
    for i in range(2):
        s = AnomalyDataSample(
            metainfo=dict(img_path=f"{i}.png", defect_type="good" if i == 0 else "x")
        )
        s.gt_label = i
        s.pred_score = torch.tensor(float(i))
        samples.append(s.to_dict())
    metric.process({"inputs": images}, samples)
    metric.compute_metrics(metric.results)
    kept = metric.last_arrays["images"]
    assert np.array_equal(kept[1], images[1].permute(1, 2, 0).numpy())
    metric2 = AnomalyMetric(pixel_metrics=False)
    metric2.process({}, samples)
    metric2.compute_metrics(metric2.results)
    assert metric2.last_arrays["images"] == [None, None]
