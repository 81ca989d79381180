"""D-FINE detection: COCO data, box transforms, the end-to-end known-answer mAP check,
the threshold sweep, and the tiny config through ``adtool.apis.run``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.evaluator import Evaluator
from PIL import Image

pytest.importorskip("transformers")

from adtool.datasets.hf import (  # noqa: E402
    CocoDetection,
    PackDetInputs,
    RandomFlipWithTargets,
    ResizeWithTargets,
    make_coco_detection_dataset,
    make_segmentation_dataset,
)
from adtool.errors import DataError  # noqa: E402
from adtool.evaluation.metrics.detection import (  # noqa: E402
    best_f1,
    match_detections,
    threshold_sweep,
)
from adtool.models.hf.dfine import DFineDetector, xyxy_to_cxcywh_normalised  # noqa: E402
from adtool.registry import MODELS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "dfine" / "dfine_tiny_coco.py"
TEST_PIPELINE = [
    dict(type="LoadAnomalyImage"),
    dict(type="ResizeWithTargets", size=128),
    dict(type="PackDetInputs"),
]


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory) -> Path:
    return make_coco_detection_dataset(tmp_path_factory.mktemp("coco"), 16, 12, size=96, seed=3)


@pytest.fixture(scope="module")
def detector() -> DFineDetector:
    from mmengine.config import Config

    cfg = Config.fromfile(str(TINY))
    cfg.model.num_classes = 3  # a run reads it from the data's categories
    torch.manual_seed(0)
    return MODELS.build(cfg.model).eval()


# ---------------------------------------------------------------------------- data


def _write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_coco_json_to_boxes(tmp_path):
    """xywh -> xyxy, category ids 3/7 -> labels 0/1, crowd and empty boxes dropped, clipped."""
    _write_png(tmp_path / "val" / "a.png", np.zeros((40, 60, 3), np.uint8))
    _write_png(tmp_path / "val" / "b.png", np.zeros((40, 60, 3), np.uint8))
    coco = {
        "images": [
            {"id": 5, "file_name": "b.png", "width": 60, "height": 40},
            {"id": 2, "file_name": "a.png", "width": 60, "height": 40},
        ],
        "annotations": [
            {"id": 1, "image_id": 2, "category_id": 7, "bbox": [10, 5, 20, 10], "iscrowd": 0},
            {"id": 2, "image_id": 2, "category_id": 3, "bbox": [50, 30, 20, 20], "iscrowd": 0},
            {"id": 3, "image_id": 2, "category_id": 3, "bbox": [0, 0, 30, 30], "iscrowd": 1},
            {"id": 4, "image_id": 2, "category_id": 3, "bbox": [5, 5, 0, 8], "iscrowd": 0},
        ],
        "categories": [{"id": 7, "name": "nut"}, {"id": 3, "name": "bolt"}],
    }
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "val.json").write_text(json.dumps(coco))
    ds = CocoDetection(tmp_path, split="val")
    assert ds.metainfo["classes"] == ("bolt", "nut")
    first, second = ds.get_data_info(0), ds.get_data_info(1)
    assert (first["img_id"], Path(first["img_path"]).name) == (2, "a.png")
    np.testing.assert_array_equal(first["gt_bboxes"], [[10, 5, 30, 15], [50, 30, 60, 40]])
    np.testing.assert_array_equal(first["gt_labels"], [1, 0])
    assert second["gt_bboxes"].shape == (0, 4)
    # The packed sample carries the same boxes as tensors.
    packed = CocoDetection(tmp_path, split="val", pipeline=TEST_PIPELINE[:1] + [PackDetInputs()])
    gt = packed[0]["data_samples"].gt_instances
    torch.testing.assert_close(gt.bboxes, torch.tensor([[10.0, 5, 30, 15], [50, 30, 60, 40]]))


def test_coco_errors_name_the_fix(tmp_path):
    with pytest.raises(DataError, match="annotations/train.json"):
        CocoDetection(tmp_path, split="train")
    (tmp_path / "annotations").mkdir()
    coco = {
        "images": [{"id": 1, "file_name": "gone.png", "width": 8, "height": 8}],
        "annotations": [],
        "categories": [{"id": 1, "name": "x"}],
    }
    (tmp_path / "annotations" / "train.json").write_text(json.dumps(coco))
    with pytest.raises(DataError, match="missing, e.g. .*gone.png"):
        CocoDetection(tmp_path, split="train")


def test_generated_boxes_are_the_shapes_extent(tmp_path):
    """Same seed and size: the detection boxes are the extents of the segmentation shapes."""
    det = make_coco_detection_dataset(tmp_path / "det", 6, 1, size=64, seed=1)
    seg = make_segmentation_dataset(tmp_path / "seg", 6, 1, size=64, seed=1)
    coco = json.loads((det / "annotations" / "train.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["rectangle", "ellipse", "triangle"]
    for image in coco["images"]:
        mask = np.array(Image.open(seg / "masks" / "train" / image["file_name"]))
        anns = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
        assert 1 <= len(anns) <= 3
        for ann in anns:
            x, y, w, h = ann["bbox"]
            # Inside the box (ring pixels aside) the mask holds this object's class ...
            inner = mask[y + 1 : y + h - 1, x + 1 : x + w - 1]
            assert ann["category_id"] in set(np.unique(inner).tolist())
            # ... and the box is tight: each border row/column touches the object or its ring.
            box = mask[y : y + h, x : x + w]
            touched = box != 0
            assert touched[0].any() and touched[-1].any()
            assert touched[:, 0].any() and touched[:, -1].any()
            # Just outside the box there is background only (objects are >= 3 px apart,
            # the ring extends 1 px out of the shape).
            if x >= 2:
                assert set(np.unique(mask[y : y + h, x - 2]).tolist()) <= {0}


def test_resize_and_flip_move_boxes_with_the_image():
    img = np.zeros((40, 80, 3), np.uint8)
    img[10:20, 8:28] = 255  # the object: x 8..28, y 10..20
    results = {
        "img": img,
        "img_shape": (40, 80),
        "gt_bboxes": np.array([[8, 10, 28, 20]], np.float32),
        "gt_labels": np.array([0]),
    }
    results = ResizeWithTargets(size=(80, 160))(results)
    results = RandomFlipWithTargets(prob=1.0)(results)
    np.testing.assert_allclose(results["gt_bboxes"], [[160 - 56, 20, 160 - 16, 40]])
    ys, xs = np.nonzero(results["img"][..., 0] > 127)
    np.testing.assert_allclose([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], [104, 20, 144, 40])
    assert results["img_shape"] == (80, 160) and results["flip"] is True
    vertical = RandomFlipWithTargets(prob=1.0, direction="vertical")(dict(results))
    np.testing.assert_allclose(vertical["gt_bboxes"], [[104, 40, 144, 60]])


# ------------------------------------------------------------------ wrapper + image processor


def test_targets_match_the_rtdetr_image_processor(detector, coco_root):
    """The wrapper's labels = what transformers' image processor makes of the COCO JSON."""
    from transformers import RTDetrImageProcessor

    ds = CocoDetection(coco_root, split="val", pipeline=TEST_PIPELINE)
    coco = json.loads((coco_root / "annotations" / "val.json").read_text())
    processor = RTDetrImageProcessor(size={"height": 128, "width": 128})
    for index in range(4):
        batch = pseudo_collate([ds[index]])
        data = detector.data_preprocessor(batch, False)
        ours = detector.targets(data["inputs"], data["data_samples"])[0]
        image = coco["images"][index]
        anns = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
        pil = Image.open(coco_root / "val" / image["file_name"]).convert("RGB")
        theirs = processor(
            images=pil,
            annotations={"image_id": image["id"], "annotations": anns},
            return_tensors="pt",
        )
        label = theirs["labels"][0]
        torch.testing.assert_close(ours["boxes"], label["boxes"], atol=1e-5, rtol=0)
        torch.testing.assert_close(ours["class_labels"], label["class_labels"] - 1)
        # Same pixels too: the pipeline + preprocessor feed what the processor would.
        assert (data["inputs"][0] - theirs["pixel_values"][0]).abs().mean() < 0.01


class _Outputs:
    def __init__(self, logits: torch.Tensor, pred_boxes: torch.Tensor) -> None:
        self.logits = logits
        self.pred_boxes = pred_boxes


def _oracle_outputs(data_samples, num_queries, num_classes, size, shift, wrong_class=False):
    """Model outputs that encode the ground truth, each box shifted by ``shift`` x its width
    towards the image centre (so no box leaves the image)."""
    batch = len(data_samples)
    logits = torch.full((batch, num_queries, num_classes), -10.0)
    generator = torch.Generator().manual_seed(0)
    boxes = torch.rand(batch, num_queries, 4, generator=generator) * 0.2 + 0.1
    for b, sample in enumerate(data_samples):
        gt = sample.gt_instances
        xyxy = gt.bboxes.clone()
        width = xyxy[:, 2] - xyxy[:, 0]
        direction = torch.where((xyxy[:, 0] + xyxy[:, 2]) / 2 < size / 2, 1.0, -1.0)
        xyxy[:, [0, 2]] += (shift * width * direction)[:, None]
        n = len(gt.labels)
        labels = (gt.labels + 1) % num_classes if wrong_class else gt.labels
        logits[b, torch.arange(n), labels] = 10.0
        boxes[b, :n] = xyxy_to_cxcywh_normalised(xyxy, size, size)
    return _Outputs(logits, boxes)


def _evaluate(detector, coco_root, shift, wrong_class=False) -> tuple[dict, dict]:
    ds = CocoDetection(coco_root, split="val", pipeline=TEST_PIPELINE)
    evaluator = Evaluator([dict(type="DetectionMetric")])
    evaluator.dataset_meta = ds.metainfo
    config = detector.model.config
    original = detector.model.forward
    try:
        for start in range(0, len(ds), 5):
            batch = pseudo_collate([ds[i] for i in range(start, min(start + 5, len(ds)))])
            samples = batch["data_samples"]
            outputs = _oracle_outputs(
                samples, config.num_queries, config.num_labels, 128, shift, wrong_class
            )
            detector.model.forward = lambda *a, _o=outputs, **k: _o
            evaluator.process(detector.test_step(batch), batch)
    finally:
        detector.model.forward = original
    metrics = evaluator.evaluate(len(ds))
    return metrics, evaluator.metrics[0].last_report


def test_known_answer_map_through_wrapper_postprocessing_and_metric(detector, coco_root):
    """Perfect boxes: mAP 1. Shifted by 10 % of the width: IoU 0.9/1.1 = 0.82 passes the
    COCO IoU thresholds 0.50..0.80 (7 of 10), so mAP = 0.7 exactly; by 30 %: IoU 0.54,
    only 0.50 passes, mAP 0.1 with mAP50 1; by 60 %: IoU 0.25, mAP 0."""
    perfect, report = _evaluate(detector, coco_root, 0.0)
    assert perfect == pytest.approx({"mAP": 1.0, "mAP50": 1.0, "mAP75": 1.0}, abs=1e-6)
    best = report["thresholds"]["best_f1"]
    assert best["f1"] == 1.0 and best["fp"] == 0 and best["fn"] == 0
    assert 0.0 < best["value"] < 1.0
    ten, _ = _evaluate(detector, coco_root, 0.1)
    assert ten == pytest.approx({"mAP": 0.7, "mAP50": 1.0, "mAP75": 1.0}, abs=1e-6)
    thirty, _ = _evaluate(detector, coco_root, 0.3)
    assert thirty == pytest.approx({"mAP": 0.1, "mAP50": 1.0, "mAP75": 0.0}, abs=1e-6)
    sixty, report = _evaluate(detector, coco_root, 0.6)
    assert sixty["mAP"] == pytest.approx(0.0, abs=1e-6)
    assert report["thresholds"]["best_f1"]["f1"] == 0.0
    wrong, _ = _evaluate(detector, coco_root, 0.0, wrong_class=True)
    assert wrong["mAP"] == pytest.approx(0.0, abs=1e-6)


def test_threshold_sweep_by_hand():
    """2 ground-truth boxes; detections 0.9 (hit), 0.8 (duplicate of the same box), 0.3 (hit)."""
    gt = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]])
    pred = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 11], [20, 20, 30, 31]])
    scores = torch.tensor([0.9, 0.8, 0.3])
    tp = match_detections(pred, scores, torch.zeros(3, dtype=torch.long), gt, torch.zeros(2))
    assert tp.tolist() == [True, False, True]
    sweep = threshold_sweep(scores.numpy(), tp.numpy(), 2)
    at = {round(t, 2): i for i, t in enumerate(sweep["threshold"])}
    assert sweep["precision"][at[0.5]] == 0.5 and sweep["recall"][at[0.5]] == 0.5
    assert sweep["precision"][at[0.2]] == pytest.approx(2 / 3) and sweep["recall"][at[0.2]] == 1
    assert sweep["precision"][at[0.95]] != sweep["precision"][at[0.95]]  # NaN: nothing kept
    best = best_f1(sweep)
    # F1 0.8 for every threshold in 0.00..0.30: the middle one is chosen.
    assert best == {
        "value": 0.15,
        "precision": pytest.approx(2 / 3),
        "recall": 1.0,
        "f1": pytest.approx(0.8),
        "tp": 2,
        "fp": 1,
        "fn": 0,
    }
    # A detection of another class never matches.
    other = match_detections(
        pred[:1], scores[:1], torch.ones(1, dtype=torch.long), gt, torch.zeros(2)
    )
    assert other.tolist() == [False]


def test_loss_is_the_models_own_and_trains(detector, coco_root):
    ds = CocoDetection(coco_root, split="train", pipeline=TEST_PIPELINE)
    batch = pseudo_collate([ds[i] for i in range(4)])
    detector.train()
    try:
        data = detector.data_preprocessor(batch, True)
        torch.manual_seed(0)
        losses = detector(**data, mode="loss")
        assert set(losses) == {"loss", "vfl", "l1", "giou"}
        assert losses["loss"].requires_grad and torch.isfinite(losses["loss"])
        # D-FINE's total adds the auxiliary, denoising and distribution losses to these.
        assert losses["loss"] > losses["vfl"] + losses["l1"] + losses["giou"]
    finally:
        detector.eval()


def test_build_from_a_local_folder(tmp_path, detector):
    detector.model.save_pretrained(tmp_path / "dfine")
    same = DFineDetector(num_classes=3, pretrained=str(tmp_path / "dfine"))
    for (name, a), b in zip(detector.model.state_dict().items(), same.model.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    # Another class count keeps the backbone and replaces the class heads.
    five = DFineDetector(num_classes=5, pretrained=str(tmp_path / "dfine"))
    assert five.model.class_embed[0].out_features == 5
    key = next(k for k in five.model.state_dict() if k.startswith("model.backbone"))
    torch.testing.assert_close(five.model.state_dict()[key], detector.model.state_dict()[key])


# ------------------------------------------------------------------------- the tiny config


def test_tiny_config_trains_tests_and_infers(tmp_path):
    from adtool.apis.core import load_config, run
    from adtool.apis.tasks import infer_task

    data = make_coco_detection_dataset(tmp_path / "data", 16, 8, size=128, seed=0)
    work = tmp_path / "work"
    options = ["train_cfg.max_epochs=1", "train_cfg.val_interval=1"]
    (results,) = run(TINY, data_root=data, work_dir=work, cfg_options=options)
    assert results["task"] == "detection" and results["model"] == "DFineDetector"
    assert set(results["metrics"]) == {"mAP", "mAP50", "mAP75"}
    assert all(0.0 <= v <= 1.0 for v in results["metrics"].values())
    assert results["n_train"] == 16 and results["n_test"] == 8
    assert results["train"]["iters"] == 2
    best = results["thresholds"]["best_f1"]
    assert set(best) >= {"value", "precision", "recall", "f1"} and 0.0 <= best["value"] <= 1.0
    on_disk = json.loads((work / "results.json").read_text())
    assert on_disk["metrics"] == results["metrics"]
    for name in ("results.txt", "threshold_sweep.png", "config.py"):
        assert (work / name).is_file(), name
    assert len(list((work / "detections").glob("*.png"))) == 8
    assert "best F1" in (work / "results.txt").read_text()
    checkpoint = Path(results["train"]["checkpoint"])
    meta = torch.load(checkpoint, map_location="cpu", weights_only=False)["meta"]
    assert meta["adtool_thresholds"] == {"score": best["value"]}
    # tools/test.py: the saved model gives the same numbers.
    (again,) = run(TINY, data_root=data, work_dir=tmp_path / "test", checkpoint=str(checkpoint))
    assert again["metrics"] == pytest.approx(results["metrics"])
    assert again["checkpoint"] == str(checkpoint) and "train" not in again
    summary = infer_task(load_config(TINY), checkpoint, data / "val", tmp_path / "infer")
    assert summary["n_images"] == 8 and summary["threshold"] == best["value"]
    assert (tmp_path / "infer" / "predictions.csv").is_file()


def test_full_size_config_points_at_a_local_folder(tmp_path, monkeypatch):
    from mmengine.config import Config

    from adtool.errors import ConfigError

    cfg = Config.fromfile(str(ROOT / "configs" / "dfine" / "dfine_hgnetv2-s_coco.py"))
    assert cfg.model.pretrained == "backbones/hf/dfine-small-coco" and cfg.model.hf_config == {}
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ADTOOL_BACKBONE_DIR", raising=False)
    with pytest.raises(ConfigError, match="dfine-small-coco.*not found.*ustc-community"):
        MODELS.build(cfg.model)
