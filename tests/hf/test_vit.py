"""ViT classification: the metric on known answers, the wrapper, the tiny config through
``adtool.apis.run`` (train, test from a checkpoint, infer) and a quality floor."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from mmengine.structures import BaseDataElement

pytest.importorskip("transformers")

from adtool.apis import load_config, run  # noqa: E402
from adtool.apis.tasks import infer_task  # noqa: E402
from adtool.datasets.hf import make_classification_dataset  # noqa: E402
from adtool.errors import DataError  # noqa: E402
from adtool.evaluation.metrics.classification import (  # noqa: E402
    ClassificationMetric,
    confidence_sweep,
)
from adtool.models.hf import ViTClassifier  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "vit" / "vit_tiny_imagefolder.py"
BASE = ROOT / "configs" / "vit" / "vit_base_imagefolder.py"
CLASSES = ("checker", "disk", "dots", "stripes")
RESULT_KEYS = {
    "task",
    "model",
    "config",
    "dataset",
    "data_root",
    "metrics",
    "thresholds",
    "timing",
    "n_train",
    "n_test",
    "train",
}


@pytest.fixture(scope="module")
def cls_data(tmp_path_factory):
    """The generated 4-class set, small: 12 train and 4 val images per class."""
    root = tmp_path_factory.mktemp("hf_cls")
    return make_classification_dataset(root, n_train_per_class=12, n_val_per_class=4)


def _metric(scores, labels, classes=None):
    metric = ClassificationMetric()
    metric.dataset_meta = {"classes": classes} if classes else None
    samples = [{"pred_scores": torch.as_tensor(s), "gt_label": y} for s, y in zip(scores, labels)]
    metric.process({}, samples)
    return metric, metric.compute_metrics(metric.results)


# ------------------------------------------------------------------ metric


def test_accuracy_top5_and_per_class_on_known_answers():
    # 6 classes; true label of each row is 0..5; the model is right on rows 0, 1, 2.
    scores = torch.full((6, 6), 0.01)
    for i, (top, second) in enumerate([(0, 1), (1, 0), (2, 3), (0, 3), (5, 0), (0, 1)]):
        scores[i, top], scores[i, second] = 0.6, 0.3
    scores[5, 2:5] = torch.tensor([0.2, 0.15, 0.1])  # label 5 ranks 6th -> not in top 5
    scores = scores / scores.sum(1, keepdim=True)
    metric, flat = _metric(scores, [0, 1, 2, 3, 4, 5], classes=list("abcdef"))
    assert flat == pytest.approx({"accuracy": 3 / 6, "top5_accuracy": 5 / 6})
    per_class = metric.last_report["thresholds"]["per_class"]
    # Class 'a' is predicted for rows 0, 3 and 5; right only on row 0.
    assert per_class["a"]["precision"] == pytest.approx(1 / 3)
    assert per_class["a"]["recall"] == pytest.approx(1.0)
    assert per_class["d"]["recall"] == 0.0 and per_class["d"]["support"] == 1
    matrix = metric.last_report["thresholds"]["confusion_matrix"]["matrix"]
    assert matrix[3][0] == 1 and matrix[4][5] == 1 and sum(map(sum, matrix)) == 6


def test_confidence_sweep_trades_coverage_for_accuracy():
    scores = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.55, 0.45]])
    labels = torch.tensor([0, 0, 0, 1])  # right, right, wrong (0.6), wrong (0.55)
    rows = confidence_sweep(scores, labels, [0.0, 0.58, 0.7, 0.95])
    assert [r["coverage"] for r in rows] == [1.0, 0.75, 0.5, 0.0]
    assert rows[0]["accuracy"] == 0.5
    assert rows[1]["accuracy"] == pytest.approx(2 / 3)
    assert rows[2]["accuracy"] == 1.0 and rows[3]["accuracy"] is None


def test_fewer_than_five_classes_top5_is_top_k_of_all():
    _, flat = _metric(torch.tensor([[0.2, 0.8], [0.3, 0.7]]), [0, 1])
    assert flat == {"accuracy": 0.5, "top5_accuracy": 1.0}


# ------------------------------------------------------------------ wrapper


def _tiny_model(num_classes=4):
    cfg = load_config(TINY)
    model_cfg = dict(cfg.model)
    model_cfg.pop("type")
    model_cfg["num_classes"] = num_classes
    return ViTClassifier(**model_cfg)


def test_wrapper_loss_is_cross_entropy_and_predict_is_softmax():
    torch.manual_seed(0)
    model = _tiny_model()
    x = torch.rand(3, 3, 32, 32)
    samples = [BaseDataElement(gt_label=i) for i in (0, 2, 3)]
    logits = model(x, mode="tensor").logits
    loss = model(x, samples, mode="loss")["loss"]
    labels = torch.tensor([0, 2, 3])
    # The tiny recipe smooths the labels by 0.1: its loss is not the plain cross-entropy.
    assert model.label_smoothing == 0.1
    expected = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.1)
    assert torch.allclose(loss, expected)
    assert not torch.allclose(loss, torch.nn.functional.cross_entropy(logits, labels))
    preds = model(x, mode="predict")
    for p, row in zip(preds, logits.softmax(1)):
        assert torch.allclose(p.pred_scores, row, atol=1e-6)
        assert p.pred_label == int(row.argmax())


def test_label_out_of_range_names_num_classes():
    model = _tiny_model(num_classes=2)
    with pytest.raises(DataError, match="num_classes"):
        model(torch.rand(1, 3, 64, 64), [BaseDataElement(gt_label=3)], mode="loss")


def test_base_config_builds_from_local_folder(tmp_path, monkeypatch):
    """vit_base_imagefolder reads backbones/hf/vit-base-patch16-224 (here a mini stand-in)."""
    from transformers import ViTConfig, ViTForImageClassification

    folder = tmp_path / "backbones" / "hf" / "vit-base-patch16-224"
    mini = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    ViTForImageClassification(ViTConfig(**mini, num_labels=1000)).save_pretrained(folder)
    monkeypatch.chdir(tmp_path)
    cfg = load_config(BASE)
    model_cfg = dict(cfg.model)
    model_cfg.pop("type")
    # The config leaves num_classes to the data (the run path counts class folders).
    assert model_cfg["num_classes"] is None
    model = ViTClassifier(**{**model_cfg, "num_classes": 4})
    assert model.model.config.image_size == 224 and model.model.classifier.out_features == 4
    out = model(torch.rand(1, 3, 224, 224) * 2 - 1, mode="tensor")
    assert out.logits.shape == (1, 4)


# ------------------------------------------------------------------ end to end


def _tiny_options(epochs: int) -> dict:
    return {
        "train_cfg.max_epochs": epochs,
        "param_scheduler.1.end": epochs,
        "train_dataloader.batch_size": 16,
    }


def test_tiny_config_trains_tests_infers(cls_data, tmp_path):
    work = tmp_path / "work"
    result = run(str(TINY), data_root=cls_data, work_dir=work, cfg_options=_tiny_options(1))[0]
    for name in (
        "config.py",
        "epoch_1.pth",
        "last_checkpoint",
        "results.json",
        "results.txt",
        "confusion_matrix.png",
        "confidence_sweep.png",
    ):
        assert (work / name).is_file(), name
    assert not list(work.glob("**/*.tmp"))
    on_disk = json.loads((work / "results.json").read_text())
    assert RESULT_KEYS <= set(on_disk) and on_disk == json.loads(json.dumps(result))
    assert on_disk["task"] == "classification" and on_disk["model"] == "ViTClassifier"
    assert on_disk["config"] == "vit_tiny_imagefolder" and on_disk["dataset"] == "imagefolder"
    assert set(on_disk["metrics"]) == {"accuracy", "top5_accuracy"}
    assert on_disk["n_train"] == 48 and on_disk["n_test"] == 16
    train = {k: on_disk["train"][k] for k in ("epochs", "iters", "checkpoint")}
    assert train == {"epochs": 1, "iters": 3, "checkpoint": str(work / "epoch_1.pth")}
    accuracy = on_disk["metrics"]["accuracy"]
    assert accuracy * 16 == pytest.approx(round(accuracy * 16))
    assert on_disk["metrics"]["top5_accuracy"] == 1.0  # 4 classes: top-5 holds all
    th = on_disk["thresholds"]
    sweep0 = th["confidence_sweep"][0]
    assert sweep0["threshold"] == 0.0 and sweep0["coverage"] == 1.0
    assert sweep0["accuracy"] == pytest.approx(accuracy)
    cm = th["confusion_matrix"]
    assert cm["classes"] == list(CLASSES) and sum(map(sum, cm["matrix"])) == 16
    assert sum(cm["matrix"][i][i] for i in range(4)) == round(accuracy * 16)
    assert "accuracy" in (work / "results.txt").read_text()
    timing = on_disk["timing"]
    assert timing["train_s"] > 0 and timing["test_images_per_s"] > 0

    # Testing the saved checkpoint reproduces the numbers and leaves the file untouched.
    ckpt = work / "epoch_1.pth"
    before = ckpt.read_bytes()
    tested = run(str(TINY), data_root=cls_data, work_dir=tmp_path / "test", checkpoint=str(ckpt))
    assert tested[0]["metrics"] == pytest.approx(on_disk["metrics"])
    assert tested[0]["checkpoint"] == str(ckpt) and "train" not in tested[0]
    assert ckpt.read_bytes() == before

    # Inference over the val folders predicts what the test scored.
    cfg = load_config(TINY)
    folders = [cls_data / "val" / c for c in CLASSES]
    summary = infer_task(cfg, ckpt, folders, tmp_path / "infer")
    assert summary["n_images"] == 16
    with open(tmp_path / "infer" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 16
    assert set(rows[0]) == {"image", "label", "class_name", "confidence", "status"}
    assert {r["status"] for r in rows} == {"ok"}
    right = sum(Path(r["image"]).parent.name == r["class_name"] for r in rows)
    assert right == round(accuracy * 16)
    assert all(0.25 <= float(r["confidence"]) <= 1.0 for r in rows)
    assert len(list((tmp_path / "infer" / "pictures").glob("*.png"))) == 16
    assert (tmp_path / "infer" / "predictions.json").is_file()


@pytest.mark.quality
def test_tiny_vit_learns_the_generated_set(tmp_path):
    """Quality floor: accuracy >= 0.80 on the generated 4-class set (chance 0.25).

    150 train / 25 val images per class, vit_tiny_imagefolder (32 px, 4 px patches, shifts,
    label smoothing) for 6 epochs (batch 32, 114 iterations), 1 torch thread, through run():
    accuracy 0.96 (82 s on a 2-core machine shared with two other jobs). The recipe before
    the real-digits work (64 px, 8 px patches, flips) gave 0.99 here and 0.58 after one
    epoch. The floor on real digits is in tests/hf/test_real_data.py.
    Command: .venv/bin/pytest tests/hf/test_vit.py -m quality
    """
    root = make_classification_dataset(tmp_path / "data", n_train_per_class=150, n_val_per_class=25)
    options = {"train_cfg.max_epochs": 6, "param_scheduler.1.end": 6}
    result = run(str(TINY), data_root=root, work_dir=tmp_path / "work", cfg_options=options)[0]
    print(f"vit_tiny_imagefolder, generated set, 6 epochs: {result['metrics']}")
    assert result["metrics"]["accuracy"] >= 0.80


def test_resume_continues_from_the_last_checkpoint(cls_data, tmp_path):
    run(str(TINY), data_root=cls_data, work_dir=tmp_path, cfg_options=_tiny_options(1))
    options = {**_tiny_options(2), "param_scheduler.1.end": 2}
    resumed = run(
        str(TINY), data_root=cls_data, work_dir=tmp_path, cfg_options=options, resume=True
    )
    # 48 images / batch 16 = 3 iterations per epoch; the second run adds only epoch 2.
    assert resumed[0]["train"]["epochs"] == 2 and resumed[0]["train"]["iters"] == 6
    assert (tmp_path / "epoch_2.pth").is_file()


def test_tools_train_and_test_cli_print_task_metrics(cls_data, tmp_path, capsys):
    from adtool.cli import main

    work = tmp_path / "cli"
    args = ["--data-root", str(cls_data), "--work-dir", str(work)]
    opts = ["--cfg-options", "train_cfg.max_epochs=1"]
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "configs/vit/vit_tiny_imagefolder.py", *args, *opts])
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    result = json.loads((work / "results.json").read_text())
    assert "classification" in out and "accuracy" in out
    assert f"{result['metrics']['accuracy']:.4f}" in out
    ckpt = work / "epoch_1.pth"
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "test",
                "configs/vit/vit_tiny_imagefolder.py",
                str(ckpt),
                *args[:2],
                "--work-dir",
                str(tmp_path / "cli_test"),
            ]
        )
    assert exit_info.value.code in (0, None)
    tested = json.loads((tmp_path / "cli_test" / "results.json").read_text())
    assert tested["metrics"]["accuracy"] == pytest.approx(result["metrics"]["accuracy"])
