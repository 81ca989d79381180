"""EoMT semantic segmentation: mask data, targets, post-processing, the metric against
references, and the tiny config through ``adtool.apis.run``."""

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
    LoadSegMask,
    RandomFlipWithTargets,
    ResizeWithTargets,
    SegMasks,
    make_segmentation_dataset,
)
from adtool.errors import ConfigError, DataError  # noqa: E402
from adtool.evaluation.metrics.segmentation import iou_from_confusion  # noqa: E402
from adtool.models.hf.eomt import EomtSegmenter, semantic_to_mask_targets  # noqa: E402
from adtool.registry import MODELS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "eomt" / "eomt_tiny_seg.py"
TEST_PIPELINE = [
    dict(type="LoadAnomalyImage"),
    dict(type="LoadSegMask"),
    dict(type="ResizeWithTargets", size=64),
    dict(type="PackSegInputs"),
]


@pytest.fixture(scope="module")
def seg_root(tmp_path_factory) -> Path:
    return make_segmentation_dataset(tmp_path_factory.mktemp("seg"), 8, 6, size=48, seed=2)


@pytest.fixture(scope="module")
def segmenter() -> EomtSegmenter:
    from mmengine.config import Config

    cfg = Config.fromfile(str(TINY))
    cfg.model.num_classes = 4  # a run reads it from the data's classes.txt
    torch.manual_seed(0)
    return MODELS.build(cfg.model).eval()


# ---------------------------------------------------------------------------- data


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_masks_are_read_with_their_ignore_index(tmp_path):
    mask = np.zeros((6, 8), np.uint8)
    mask[1:3, 2:5] = 2
    mask[4, :] = 255
    _png(tmp_path / "val" / "a.jpg", np.zeros((6, 8, 3), np.uint8))
    _png(tmp_path / "masks" / "val" / "a.png", mask)  # same stem, .png
    ds = SegMasks(tmp_path, split="val", classes=("bg", "x", "y"), pipeline=TEST_PIPELINE[:2])
    assert ds.metainfo["classes"] == ("bg", "x", "y")
    np.testing.assert_array_equal(ds[0]["gt_sem_seg"], mask)
    # ADE20K-style masks (0 = unlabelled, classes from 1): 0 -> ignored, the rest shift down.
    reduced = LoadSegMask(reduce_zero_label=True)(dict(ds.get_data_info(0), img_shape=(6, 8)))
    expected = np.where(mask == 0, 255, np.where(mask == 255, 255, mask - 1))
    np.testing.assert_array_equal(reduced["gt_sem_seg"], expected)
    # A palette PNG gives its indices, not colours.
    palette = Image.fromarray(mask, mode="P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [255, 255, 255] * 253)
    palette.save(tmp_path / "masks" / "val" / "a.png")
    np.testing.assert_array_equal(ds[0]["gt_sem_seg"], mask)


def test_seg_errors_name_the_fix(tmp_path):
    _png(tmp_path / "train" / "a.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DataError, match="found no class ids .*classes.txt"):
        SegMasks(tmp_path, split="train")
    (tmp_path / "classes.txt").write_text("bg\nfg\n")
    with pytest.raises(DataError, match="no mask in .*a.png"):
        SegMasks(tmp_path, split="train")
    _png(tmp_path / "masks" / "train" / "a.png", np.zeros((4, 4, 3), np.uint8))
    ds = SegMasks(tmp_path, split="train", pipeline=TEST_PIPELINE[:2])
    assert ds.metainfo["classes"] == ("bg", "fg")
    with pytest.raises(DataError, match="mode RGB"):
        ds[0]


def test_classes_are_named_from_the_mask_ids_when_none_are_given(tmp_path, warning_lines):
    """No classes=() and no classes.txt: ids 0..max found in the training masks become
    class_<id> (an id missing in between keeps its place), with one warning line."""
    for name, ids in (("a", (0, 2)), ("b", (0, 5, 255))):
        mask = np.zeros((4, 4), np.uint8)
        mask[0, : len(ids)] = ids
        _png(tmp_path / "train" / f"{name}.png", np.zeros((4, 4, 3), np.uint8))
        _png(tmp_path / "masks" / "train" / f"{name}.png", mask)
    ds = SegMasks(tmp_path, split="train")
    SegMasks(tmp_path, split="train", classes=None)
    assert ds.metainfo["classes"] == tuple(f"class_{i}" for i in range(6))
    warnings = [line for line in warning_lines if "class_0.." in line]
    assert len(warnings) == 1 and "ids [0, 2, 5], named class_0..class_5" in warnings[0]
    # The model's num_classes comes from the same names; a checkpoint's classes win.
    assert SegMasks.model_settings({"data_root": str(tmp_path)}) == {"num_classes": 6}
    assert SegMasks.model_settings({"data_root": str(tmp_path)}, {"classes": ("a", "b")}) == {
        "num_classes": 2
    }
    # An RGB mask cannot hold class ids: named, not guessed.
    _png(tmp_path / "masks" / "train" / "b.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DataError, match="b.png has mode RGB"):
        SegMasks(tmp_path / ".", split="train")


def test_generated_masks_and_classes(seg_root):
    assert (seg_root / "classes.txt").read_text().split() == [
        "background",
        "rectangle",
        "ellipse",
        "triangle",
    ]
    mask = np.array(Image.open(seg_root / "masks" / "train" / "000000.png"))
    assert mask.shape == (48, 48) and mask.dtype == np.uint8
    values = set(np.unique(mask).tolist())
    assert {0, 255} <= values and values <= {0, 1, 2, 3, 255}
    # The ignore ring is the shapes' boundary: every object pixel next to background is 255.
    objects = (mask > 0) & (mask < 255)
    background = mask == 0
    assert not (objects[:, 1:] & background[:, :-1]).any()
    assert not (objects[1:] & background[:-1]).any()


def test_resize_and_flip_keep_mask_labels():
    mask = np.zeros((10, 20), np.uint8)
    mask[2:6, 3:9] = 3
    mask[8, :] = 255
    img = np.zeros((10, 20, 3), np.uint8)
    img[2:6, 3:9] = 200
    results = {"img": img, "img_shape": (10, 20), "gt_sem_seg": mask}
    results = ResizeWithTargets(size=(30, 60))(results)
    results = RandomFlipWithTargets(prob=1.0)(results)
    out = results["gt_sem_seg"]
    assert out.shape == (30, 60) and set(np.unique(out).tolist()) == {0, 3, 255}
    # The labelled region follows the image: x 3..9 -> 9..27 at x3, flipped to 33..51.
    ys, xs = np.nonzero(out == 3)
    assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (33, 51, 6, 18)
    bright = results["img"][..., 0] > 100
    assert (bright == (out == 3)).mean() > 0.97


# ------------------------------------------------------------------- targets + prediction


def test_semantic_mask_to_mask_classification_targets():
    sem = torch.tensor([[0, 0, 2, 255], [2, 2, 0, 255]])
    masks, classes = semantic_to_mask_targets(sem, num_classes=4)
    assert classes.tolist() == [0, 2]
    torch.testing.assert_close(masks[0], torch.tensor([[1.0, 1, 0, 0], [0, 0, 1, 0]]))
    torch.testing.assert_close(masks[1], torch.tensor([[0.0, 0, 1, 0], [1, 1, 0, 0]]))
    empty, none = semantic_to_mask_targets(torch.full((2, 2), 255), num_classes=4)
    assert empty.shape == (0, 2, 2) and none.numel() == 0
    with pytest.raises(DataError, match="mask class 4"):
        semantic_to_mask_targets(torch.tensor([[4]]), num_classes=4)


class _Outputs:
    def __init__(self, class_logits: torch.Tensor, mask_logits: torch.Tensor) -> None:
        self.class_queries_logits = class_logits
        self.masks_queries_logits = mask_logits
        self.patch_offsets = None


def _oracle(data_samples, num_queries: int, num_classes: int, flip_class: int | None = None):
    """Query k predicts class k with the ground-truth mask of class k (others: no object)."""
    batch = len(data_samples)
    h, w = data_samples[0].gt_sem_seg.shape
    class_logits = torch.full((batch, num_queries, num_classes + 1), -8.0)
    class_logits[..., num_classes] = 8.0  # "no object" by default
    mask_logits = torch.full((batch, num_queries, h, w), -8.0)
    for b, sample in enumerate(data_samples):
        sem = sample.gt_sem_seg
        for k in range(num_classes):
            predicted = flip_class if (flip_class is not None and k == 1) else k
            class_logits[b, k, predicted] = 8.0
            class_logits[b, k, num_classes] = -8.0
            mask_logits[b, k][sem == k] = 8.0
    return _Outputs(class_logits, mask_logits)


def _evaluate(segmenter, root, flip_class=None):
    ds = SegMasks(root, split="val", pipeline=TEST_PIPELINE)
    evaluator = Evaluator([dict(type="SegmentationMetric")])
    evaluator.dataset_meta = ds.metainfo
    config = segmenter.model.config
    original = segmenter.model.forward
    try:
        batch = pseudo_collate([ds[i] for i in range(len(ds))])
        outputs = _oracle(batch["data_samples"], config.num_queries, config.num_labels, flip_class)
        segmenter.model.forward = lambda *a, **k: outputs
        evaluator.process(segmenter.test_step(batch), batch)
    finally:
        segmenter.model.forward = original
    return evaluator.evaluate(len(ds)), evaluator.metrics[0].last_report


def test_known_answer_segmentation_through_postprocessing_and_metric(segmenter, seg_root):
    """Queries that encode the ground truth give mIoU 1; relabelling class 1 as class 2
    gives IoU 0 for class 1 and IoU(2) = |2| / (|1| + |2|)."""
    perfect, report = _evaluate(segmenter, seg_root)
    assert perfect == pytest.approx({"mIoU": 1.0, "pixel_accuracy": 1.0})
    pixels = {k: v["pixels"] for k, v in report["thresholds"]["per_class"].items()}
    swapped, report = _evaluate(segmenter, seg_root, flip_class=2)
    per_class = report["thresholds"]["per_class"]
    assert per_class["rectangle"]["IoU"] == 0.0
    expected = pixels["ellipse"] / (pixels["ellipse"] + pixels["rectangle"])
    assert per_class["ellipse"]["IoU"] == pytest.approx(expected)
    assert swapped["mIoU"] == pytest.approx((1 + 0 + expected + 1) / 4)


def test_postprocessing_matches_the_eomt_formula(segmenter):
    """pred = argmax_c sum_q softmax(class_q)[c] * sigmoid(mask_q), masks resized to the input."""
    generator = torch.Generator().manual_seed(0)
    class_logits = torch.randn(2, 10, 5, generator=generator)
    mask_logits = torch.randn(2, 10, 16, 16, generator=generator)
    scores = segmenter.segmentation_scores(_Outputs(class_logits, mask_logits), (64, 64))
    up = torch.nn.functional.interpolate(mask_logits, size=(64, 64), mode="bilinear")
    expected = torch.einsum("bqc,bqhw->bchw", class_logits.softmax(-1)[..., :-1], up.sigmoid())
    torch.testing.assert_close(scores, expected)


def test_loss_and_input_size_check(segmenter, seg_root):
    ds = SegMasks(seg_root, split="train", pipeline=TEST_PIPELINE)
    batch = pseudo_collate([ds[i] for i in range(2)])
    segmenter.train()
    try:
        data = segmenter.data_preprocessor(batch, True)
        loss = segmenter(**data, mode="loss")["loss"]
        assert loss.requires_grad and torch.isfinite(loss) and loss > 0
        with pytest.raises(ConfigError, match="64x64 inputs"):
            segmenter(data["inputs"][..., :32, :32], data["data_samples"], mode="loss")
    finally:
        segmenter.eval()


def test_metric_matches_torchmetrics_jaccard_and_numpy():
    from torchmetrics.functional.classification import multiclass_jaccard_index

    generator = torch.Generator().manual_seed(1)
    gt = torch.randint(0, 3, (2, 12, 12), generator=generator)
    gt[:, 0] = 255
    pred = torch.where(torch.rand(2, 12, 12, generator=generator) < 0.7, gt, 1).clamp(max=2)
    evaluator = Evaluator([dict(type="SegmentationMetric", num_classes=3)])
    samples = [
        {"gt_sem_seg": g, "pred_sem_seg": p, "img_path": f"{i}.png"}
        for i, (g, p) in enumerate(zip(gt, pred))
    ]
    evaluator.process(samples)
    metrics = evaluator.evaluate(2)
    reference = multiclass_jaccard_index(pred, gt, num_classes=3, ignore_index=255, average="macro")
    assert metrics["mIoU"] == pytest.approx(float(reference))
    valid = gt != 255
    assert metrics["pixel_accuracy"] == pytest.approx(float((pred == gt)[valid].float().mean()))
    # A class that never occurs is left out of the mean, not counted as IoU 0.
    confusion = np.array([[5, 1, 0], [2, 7, 0], [0, 0, 0]])
    scores = iou_from_confusion(confusion)
    assert np.isnan(scores["iou"][2])
    assert scores["mIoU"] == pytest.approx((5 / 8 + 7 / 10) / 2)
    assert scores["pixel_accuracy"] == pytest.approx(12 / 15)


# ------------------------------------------------------------------------- the tiny config


def test_tiny_config_trains_tests_and_infers(tmp_path):
    from adtool.apis.core import load_config, run
    from adtool.apis.tasks import infer_task

    data = make_segmentation_dataset(tmp_path / "data", 16, 6, size=64, seed=0)
    work = tmp_path / "work"
    options = ["train_cfg.max_epochs=1", "train_cfg.val_interval=1"]
    (results,) = run(TINY, data_root=data, work_dir=work, cfg_options=options)
    assert results["task"] == "segmentation" and results["model"] == "EomtSegmenter"
    assert set(results["metrics"]) == {"mIoU", "pixel_accuracy"}
    assert all(0.0 <= v <= 1.0 for v in results["metrics"].values())
    assert results["n_train"] == 16 and results["n_test"] == 6 and results["train"]["iters"] == 2
    per_class = results["thresholds"]["per_class"]
    assert list(per_class) == ["background", "rectangle", "ellipse", "triangle"]
    matrix = np.array(results["thresholds"]["confusion_matrix"]["matrix"])
    # Every scored pixel is in the matrix: 6 images of 64x64 minus the ignored ring.
    masks = [np.array(Image.open(p)) for p in sorted((data / "masks" / "val").glob("*.png"))]
    assert matrix.sum() == sum(int((m != 255).sum()) for m in masks)
    assert results["metrics"]["pixel_accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())
    on_disk = json.loads((work / "results.json").read_text())
    assert on_disk["metrics"] == results["metrics"]
    for name in (
        "results.txt",
        "confusion_matrix.png",
        "confusion_matrix.csv",
        "per_class_iou.png",
    ):
        assert (work / name).is_file(), name
    assert len(list((work / "overlays").glob("*.png"))) == 6
    assert "per class" in (work / "results.txt").read_text()
    checkpoint = results["train"]["checkpoint"]
    # tools/test.py: the saved model gives the same numbers.
    (again,) = run(TINY, data_root=data, work_dir=tmp_path / "test", checkpoint=checkpoint)
    assert again["metrics"] == pytest.approx(results["metrics"])
    summary = infer_task(load_config(TINY), checkpoint, data / "val", tmp_path / "infer")
    assert summary["n_images"] == 6
    mask = np.array(Image.open(tmp_path / "infer" / "masks" / "000000.png"))
    assert mask.shape == (64, 64) and mask.max() < 4


def test_full_size_config_points_at_a_local_folder(tmp_path, monkeypatch):
    from mmengine.config import Config

    cfg = Config.fromfile(str(ROOT / "configs" / "eomt" / "eomt_vit-l_ade.py"))
    assert cfg.model.pretrained == "backbones/hf/ade20k_semantic_eomt_large_512"
    assert cfg.test_dataloader.dataset.pipeline[1] == dict(
        type="LoadSegMask", reduce_zero_label=True
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ADTOOL_BACKBONE_DIR", raising=False)
    with pytest.raises(ConfigError, match="not found.*tue-mps/ade20k_semantic_eomt_large_512"):
        MODELS.build(cfg.model)
