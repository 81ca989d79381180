"""Ensembles: tools/ensemble.py end to end, each rule against a direct computation,
statistics from held-out normal training images only, the checkpoint round trip.

One tiny benchmark serves every test (one module, so that the runs are made once):
PatchCore and DFM at 64 px and PaDiM at 48 px (the ensemble resizes for it), random
weights, on the two tiny sample categories (each pair fits in seconds). Then ``adtool
ensemble`` (the command tools/ensemble.py runs) picks the top 3 per category from
benchmark.json, refits them without a seeded half of the 6 normal training images
(holdout calibration), fits the statistics on that held-out half and tests the ensemble
through the run path, and the tables gain its row; ``tools/infer.py`` on the saved
ensemble of the second category (not the config's default one) loads that category's
members. A second ensemble uses ``--calibration train`` (the benchmark's own members).
"""

import csv
import json
import runpy
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from typer.testing import CliRunner

from adtool.apis.benchmark import run_benchmark
from adtool.apis.checkpoints import last_checkpoint, load_model
from adtool.apis.core import load_config, run_category
from adtool.apis.ensemble import top_pairs
from adtool.cli import app, expand_cfg_options
from adtool.errors import ConfigError
from adtool.models.anomaly.ensemble.model import member_input_size
from adtool.registry import DATASETS, MODELS

REPO = Path(__file__).resolve().parents[2]
BASES = (
    ("patchcore/patchcore_effnetlite0_sample.py", 64),
    ("padim/padim_effnetlite0_mvtec.py", 48),
    ("dfm/dfm_effnetlite0_mvtec.py", 64),
)
NAME = "ensemble_top3_mean"
CATEGORY = "disk"
FRACTION = 0.5  # 3 of the 6 tiny training images held out


def write_tiny_config(folder: Path, base: str, size: int = 64) -> Path:
    """A real config with random weights, ``size`` px and batches of 4."""
    path = folder / f"{Path(base).stem}.py"
    path.write_text(
        f'_base_ = "{(REPO / "configs" / base).as_posix()}"\n'
        "model = dict(backbone=dict(weights=None))\n"
        "train_pipeline = [dict(type='LoadAnomalyImage'), "
        f"dict(type='Resize', size={size}), dict(type='PackAnomalyInputs')]\n"
        "test_pipeline = [dict(type='LoadAnomalyImage'), dict(type='LoadAnomalyMask'), "
        f"dict(type='Resize', size={size}), dict(type='PackAnomalyInputs')]\n"
        "train_dataloader = dict(batch_size=4, dataset=dict(pipeline=train_pipeline))\n"
        "test_dataloader = dict(batch_size=4, dataset=dict(pipeline=test_pipeline))\n"
    )
    return path


@pytest.fixture(scope="module")
def ensembled(tiny_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ens_bench")
    configs = [write_tiny_config(folder, base, size) for base, size in BASES]
    work = folder / "bench"
    summary = run_benchmark(
        configs, work, data_root=tiny_data, dataset="sample", threads=1, live=False
    )
    assert not summary.failed
    done = CliRunner().invoke(
        app,
        expand_cfg_options(
            [
                "ensemble",
                "--from-benchmark",
                str(work),
                "--top-k",
                "3",
                "--holdout-fraction",
                str(FRACTION),
            ]
        ),
    )
    assert done.exit_code == 0, done.output
    return work, done.output


@pytest.fixture(scope="module")
def fitted(ensembled):
    """The ensemble config, its disk results folder and results."""
    work, _ = ensembled
    out = work / NAME / CATEGORY
    cfg = load_config(work / f"{NAME}.py")
    return cfg, out, json.loads((out / "results.json").read_text())


def test_the_table_gains_the_ensemble_row(ensembled):
    work, output = ensembled
    payload = json.loads((work / "benchmark.json").read_text())
    rows = {(r["config"], r["category"]): r for r in payload["pairs"]}
    categories = sorted({c for _, c in rows})
    assert categories == ["disk", "tiles"]
    for category in categories:
        row = rows[("ensemble_top3_mean", category)]
        assert row["status"] == "ok" and row["model"] == "Ensemble"
        results = json.loads((work / "ensemble_top3_mean" / category / "results.json").read_text())
        assert row["image_AUROC"] == results["image"]["AUROC"]
        # The members are the category's three models, ranked as the benchmark ranks them.
        singles = [r for r in payload["pairs"] if r["model"] != "Ensemble"]
        ranked = [r["config"] for r in top_pairs(singles, category, 3)]
        assert [m["name"] for m in results["model_info"]["members"]] == ranked
        assert results["model_info"]["rule"] == "mean"
        # Statistics on the 3 held-out images, none of which a member was fitted on.
        assert results["model_info"]["calibration"] == {
            "kind": "holdout",
            "images": 3,
            "member_training_images": [3, 3, 3],
            "shared_with_members": [0, 0, 0],
        }
        # The members are the refitted copies, tested like any pair.
        cfg = load_config(work / "ensemble_top3_mean.py")
        members_root = work / "ensemble_members" / "holdout0.5_seed0"
        for member in cfg.model["members"][category]:
            refit = members_root / member["name"] / category
            assert Path(member["checkpoint"]).parent == refit.resolve()
            assert json.loads((refit / "results.json").read_text())["n_train"] == 3
    setting = payload["settings"]["ensembles"]["ensemble_top3_mean"]
    assert setting["calibration"] == "holdout"
    assert setting["holdout"] == {"fraction": 0.5, "seed": 0}
    means = [m for m in payload["means"] if m["config"] == "ensemble_top3_mean"]
    assert len(means) == 1 and means[0]["status"] == "ok"
    with open(work / "benchmark.csv", newline="") as f:
        csv_rows = [r for r in csv.DictReader(f) if r["config"] == "ensemble_top3_mean"]
    assert sorted(r["category"] for r in csv_rows) == ["disk", "mean", "tiles"]
    assert "`ensemble_top3_mean`" in (work / "benchmark.md").read_text()
    assert (work / "ensemble_top3_mean.py").is_file()
    assert f"{NAME}: 2/2 categories ok" in output


def test_a_second_rule_adds_a_row_and_keeps_the_first(ensembled, monkeypatch):
    work, _ = ensembled
    # tools/ensemble.py itself, as a user runs it: train calibration (the benchmark's
    # members, statistics on the images they were fitted on).
    argv = ["tools/ensemble.py", "--from-benchmark", str(work), "--top-k", "2"]
    argv += ["--rule", "rank", "--categories", "tiles", "--calibration", "train"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(REPO / "tools" / "ensemble.py"), run_name="__main__")
    assert stop.value.code in (0, None)
    configs = {r["config"] for r in json.loads((work / "benchmark.json").read_text())["pairs"]}
    assert {"ensemble_top3_mean", "ensemble_top2_rank_train"} <= configs
    assert len([c for c in configs if not c.startswith("ensemble")]) == 3
    results = json.loads((work / "ensemble_top2_rank_train" / "tiles" / "results.json").read_text())
    assert results["model_info"]["calibration"] == {
        "kind": "train",
        "images": 6,
        "member_training_images": [6, 6],
        "shared_with_members": [6, 6],
    }
    cfg = load_config(work / "ensemble_top2_rank_train.py")
    for member in cfg.model["members"]["tiles"]:
        assert Path(member["checkpoint"]).parent == (work / member["name"] / "tiles").resolve()


def test_infer_loads_the_members_of_the_checkpoint_category(ensembled, tmp_path):
    work, _ = ensembled
    # The config's default category is the first one (disk); the tiles checkpoint must
    # bring the tiles members (its dataset meta says tiles).
    out = work / "ensemble_top3_mean" / "tiles"
    images = [
        Path(line.split(",")[0]) for line in (out / "scores.csv").read_text().splitlines()[1:]
    ]
    want = {
        line.split(",")[0]: float(line.split(",")[3])
        for line in (out / "scores.csv").read_text().splitlines()[1:]
    }
    done = CliRunner().invoke(
        app,
        [
            "infer",
            str(work / "ensemble_top3_mean.py"),
            str(last_checkpoint(out)),
            str(images[0].parent),
            "--out",
            str(tmp_path / "pred"),
        ],
    )
    assert done.exit_code == 0, done.output
    with open(tmp_path / "pred" / "predictions.csv", newline="") as f:
        got = {r["path"]: float(r["score"]) for r in csv.DictReader(f)}
    assert got and all(got[p] == pytest.approx(want[p], rel=1e-4, abs=1e-5) for p in got)


def csv_scores(out: Path) -> list[float]:
    """The sorted test scores of a run's scores.csv."""
    lines = (out / "scores.csv").read_text().splitlines()[1:]
    return sorted(float(line.split(",")[3]) for line in lines)


def batch(cfg: Config, split_key: str) -> torch.Tensor:
    """Every image of a loader's dataset as the ensemble's float 0-255 batch."""
    spec = cfg[split_key]["dataset"].to_dict()
    spec["category"] = CATEGORY
    dataset = DATASETS.build(spec)
    return torch.stack([dataset[i]["inputs"] for i in range(len(dataset))]).float()


def dataset_paths(loader: dict, category: str = CATEGORY) -> set[str]:
    spec = loader["dataset"].to_dict()
    spec.update(category=category, pipeline=[])
    dataset = DATASETS.build(spec)
    return {dataset.get_data_info(i)["img_path"] for i in range(len(dataset))}


def test_held_out_images_are_disjoint_from_the_members_training_images(fitted, tiny_data):
    cfg, _, _ = fitted
    held = dataset_paths(cfg.train_dataloader)
    every = {str(p) for p in (Path(tiny_data) / CATEGORY / "train" / "good").glob("*.png")}
    assert len(held) == 3 and held < every
    for member in cfg.model["members"][CATEGORY]:
        member_cfg = load_config(member["config"])
        fitted_on = dataset_paths(member_cfg.train_dataloader)
        assert not held & fitted_on and held | fitted_on == every
    test = dataset_paths(cfg.test_dataloader)
    assert not held & test


def test_statistics_are_those_of_the_held_out_images(fitted):
    cfg, out, _ = fitted
    model, _ = load_model(cfg, last_checkpoint(out))
    with torch.no_grad():
        scores, maps = model.all_member_outputs(batch(cfg, "train_dataloader"))
    assert scores.shape == (3, 3)  # 3 members x the 3 held-out images
    norm = model.normalizer
    s = scores.double().numpy()
    np.testing.assert_allclose(norm.score_mean.numpy(), s.mean(1), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(norm.score_std.numpy(), s.std(1).clip(1e-12), rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(norm.train_scores.numpy(), np.sort(s, 1), rtol=1e-6, atol=1e-9)
    q = np.linspace(0, 1, norm.map_quantiles)
    for k, m in enumerate(maps):
        values = m.double().numpy().ravel()  # 64 px: every pixel is in the sample
        np.testing.assert_allclose(float(norm.map_mean[k]), values.mean(), rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(float(norm.map_std[k]), values.std(), rtol=1e-4, atol=1e-9)
        np.testing.assert_allclose(
            norm.map_table[k].numpy(), np.quantile(values, q), rtol=1e-5, atol=1e-9
        )


def _direct(rule, scores, maps, norm, weights):
    """The fused score and map of ``rule`` computed from the statistics with numpy."""
    s = scores.double().numpy()
    mu, sd = norm.score_mean.double().numpy()[:, None], norm.score_std.double().numpy()[:, None]
    z = (s - mu) / sd
    zm = np.stack(
        [
            (m.double().numpy() - float(norm.map_mean[k])) / float(norm.map_std[k])
            for k, m in enumerate(maps)
        ]
    )
    if rule == "mean":
        return z.mean(0), zm.mean(0)
    if rule == "max":
        return z.max(0), zm.max(0)
    if rule == "weighted":
        w = np.asarray(weights, dtype=float) / sum(weights)
        return (w[:, None] * z).sum(0), (w[:, None, None, None] * zm).sum(0)
    # rank: ECDF of the training scores; maps: ECDF of training pixels between quantiles
    train = norm.train_scores.double().numpy()
    ecdf = np.stack(
        [np.searchsorted(train[k], s[k], side="right") / train.shape[1] for k in range(len(s))]
    )
    q = np.linspace(0, 1, norm.map_quantiles)
    ranks = np.stack(
        [
            np.interp(m.double().numpy(), norm.map_table[k].double().numpy(), q)
            for k, m in enumerate(maps)
        ]
    )
    return ecdf.mean(0), ranks.mean(0)


@pytest.mark.parametrize("rule", ["mean", "max", "rank", "weighted"])
def test_each_rule_equals_the_direct_computation(fitted, rule):
    cfg, out, _ = fitted
    weights = [3.0, 1.0, 2.0] if rule == "weighted" else None
    cfg = Config(cfg.to_dict(), filename=cfg.filename)
    cfg.model["rule"], cfg.model["weights"] = rule, weights
    # The fitted statistics fit every rule: the checkpoint of the mean ensemble serves.
    model, _ = load_model(cfg, last_checkpoint(out))
    inputs = batch(cfg, "test_dataloader")
    with torch.no_grad():
        scores, maps = model.all_member_outputs(inputs)
        fused_score, fused_map = model.anomaly_outputs(inputs)
    want_score, want_map = _direct(rule, scores, maps, model.normalizer, weights)
    np.testing.assert_allclose(fused_score.numpy(), want_score, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fused_map.numpy(), want_map, rtol=1e-4, atol=1e-4)
    assert fused_map.shape == (len(inputs), 64, 64)  # the PaDiM member's 48 px map resized
    assert (48, 48) in model.member_sizes
    if rule == "rank":
        assert 0.0 <= float(fused_score.min()) and float(fused_score.max()) <= 1.0


def test_run_scores_are_the_fused_scores(fitted):
    """The tested scores (scores.csv) are the mean rule's fused scores of the checkpoint."""
    cfg, out, result = fitted
    model, _ = load_model(cfg, last_checkpoint(out))
    with torch.no_grad():
        fused, _ = model.anomaly_outputs(batch(cfg, "test_dataloader"))
    np.testing.assert_allclose(csv_scores(out), sorted(fused.tolist()), rtol=1e-5, atol=1e-6)
    assert result["model"] == "Ensemble"
    assert len(result["model_info"]["members"]) == 3


def test_changing_test_labels_changes_nothing(fitted, tiny_data, tmp_path):
    """Every test defect relabelled as good: the statistics and every score stay the same."""
    cfg, out, _ = fitted
    root = tmp_path / "relabelled"
    shutil.copytree(Path(tiny_data) / CATEGORY, root / CATEGORY)
    test_dir = root / CATEGORY / "test"
    for defect in [d for d in test_dir.iterdir() if d.name != "good"]:
        for image in defect.iterdir():
            image.rename(test_dir / "good" / f"{defect.name}_{image.name}")
        defect.rmdir()
    shutil.rmtree(root / CATEGORY / "ground_truth")
    cfg = Config(cfg.to_dict(), filename=cfg.filename)
    for key in ("train_dataloader", "test_dataloader"):
        cfg[key]["dataset"]["data_root"] = str(root)
    out2 = tmp_path / "run"
    result2 = run_category(cfg, CATEGORY, out2)
    a = torch.load(last_checkpoint(out), weights_only=False)["state_dict"]
    b = torch.load(last_checkpoint(out2), weights_only=False)["state_dict"]
    keys = [k for k in a if k.startswith("normalizer.")]
    assert keys and all(torch.equal(a[k], b[k]) for k in keys)
    np.testing.assert_allclose(csv_scores(out), csv_scores(out2), rtol=1e-6)
    assert result2["image"]["AUROC"] is None  # one class now: no AUROC, same scores


def test_checkpoint_round_trip(fitted):
    cfg, out, result = fitted
    path = last_checkpoint(out)
    saved = torch.load(path, weights_only=False)["state_dict"]
    model, _ = load_model(cfg, path)
    for key in ("score_mean", "score_std", "map_mean", "map_std", "train_scores", "map_table"):
        assert torch.equal(getattr(model.normalizer, key), saved[f"normalizer.{key}"]), key
    assert model.normalizer.train_scores.shape == (3, 3)  # the checkpoint's size, 3 images
    assert int(model.normalizer.calibration_images) == 3  # recorded in the checkpoint
    assert any(k.startswith("members.2.head.") for k in saved)  # members travel with it
    stored = model.postprocessor.thresholds()
    assert stored is not None
    assert stored["value"] == pytest.approx(result["thresholds"]["f1_percentile"]["value"])


def test_bad_ensembles_are_one_line_errors(fitted):
    cfg, _, _ = fitted
    specs = [dict(m) for m in cfg.model["members"][CATEGORY]]
    with pytest.raises(ConfigError, match="two or more members"):
        MODELS.build(dict(type="Ensemble", members=specs[:1]))
    with pytest.raises(ConfigError, match="weights must be 3 non-negative"):
        MODELS.build(dict(type="Ensemble", members=specs, rule="weighted", weights=[1.0]))
    with pytest.raises(ConfigError, match="pass --category"):
        MODELS.build(dict(type="Ensemble", members={"disk": specs, "tiles": specs}))
    with pytest.raises(ConfigError, match="unknown key 'ckpt'"):
        MODELS.build(dict(type="Ensemble", members=[*specs, {"config": "a", "ckpt": "b"}]))
    model = MODELS.build(dict(type="Ensemble", members=specs))
    with pytest.raises(ConfigError, match="no training statistics"):
        model.anomaly_outputs(torch.zeros(1, 3, 64, 64))
    cropped = load_config(specs[0]["config"])
    cropped.test_dataloader.dataset.pipeline.insert(3, dict(type="CenterCrop", size=56))
    with pytest.raises(ConfigError, match="has a CenterCrop step"):
        member_input_size(cropped, "pc")
