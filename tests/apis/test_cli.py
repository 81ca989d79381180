"""The CLI: results on success; one line and exit 2 on a user mistake."""

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from adtool.apis import train, train_models
from adtool.apis.core import load_config, use_dataset
from adtool.cli import app, expand_cfg_options

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "--cfg-options",
    "model.backbone.weights=None",
    "train_dataloader.dataset.pipeline.1.size=64",
    "test_dataloader.dataset.pipeline.2.size=64",
]


def _invoke(args):
    result = CliRunner().invoke(app, expand_cfg_options(args))
    return result.exit_code, result.output


def _assert_one_line_error(code, output, *needles):
    assert code == 2, output
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), output
    assert "Traceback" not in output
    for needle in needles:
        assert needle in output, output


def test_wrong_data_root(tmp_path):
    code, out = _invoke(
        [
            "train",
            "patchcore_effnetlite0_sample",
            "--data-root",
            str(tmp_path / "missing"),
            "--work-dir",
            str(tmp_path / "w"),
        ]
    )
    _assert_one_line_error(code, out, str(tmp_path / "missing"), "--data-root")
    assert not (tmp_path / "w" / "disk" / "results.json").exists()


def test_config_key_typo(tiny_data, tmp_path):
    code, out = _invoke(
        [
            "train",
            "patchcore_effnetlite0_sample",
            "--data-root",
            str(tiny_data),
            "--work-dir",
            str(tmp_path),
            "--cfg-options",
            "model.neck.kernel_sise=3",
        ]
    )
    _assert_one_line_error(code, out, "kernel_sise", "LocalPatchAggregator", "'kernel_size'")


def test_missing_weight_file(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("ADTOOL_BACKBONE_DIR", str(tmp_path / "empty"))
    code, out = _invoke(
        [
            "train",
            "patchcore_r18_mvtec",
            "--data-root",
            str(tiny_data),
            "--category",
            "tiles",
            "--work-dir",
            str(tmp_path),
        ]
    )
    _assert_one_line_error(
        code,
        out,
        "resnet18",
        str(tmp_path / "empty" / "resnet18.pth"),
        "tools/fetch_backbones.py resnet18",
    )


def test_unknown_config_suggests_a_name():
    code, out = _invoke(["train", "patchcore_r18_mvtc"])
    _assert_one_line_error(code, out, "patchcore_r18_mvtec")


def test_list_and_print_config():
    code, out = _invoke(["list-configs"])
    assert code == 0 and "patchcore_wrn50_mvtec" in out and "patchcore_r18_mvtec" in out
    code, out = _invoke(
        [
            "print-config",
            "patchcore_r18_mvtec",
            "--cfg-options",
            "model.head.num_neighbors=3",
            "model.head.coreset_ratio=0.01",
        ]
    )
    assert code == 0 and "num_neighbors=3" in out and "coreset_ratio=0.01" in out
    assert "arch='resnet18.tv_in1k'" in out and "type='MVTecAD'" in out


def test_expand_cfg_options_takes_mmdet_form():
    assert expand_cfg_options(["train", "c", "--cfg-options", "a=1", "b.c=2", "--resume"]) == [
        "train",
        "c",
        "--cfg-options",
        "a=1",
        "--cfg-options",
        "b.c=2",
        "--resume",
    ]


def test_tools_train_script_end_to_end(tiny_data, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools/train.py"),
            "configs/patchcore/patchcore_effnetlite0_sample.py",
            "--data-root",
            str(tiny_data),
            "--category",
            "tiles",
            "--work-dir",
            str(tmp_path),
            *TINY,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "tiles" in proc.stdout and "image AUROC" in proc.stdout
    saved = json.loads((tmp_path / "tiles" / "results.json").read_text())
    assert saved["config"] == "patchcore_effnetlite0_sample"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools/test.py"),
            "configs/patchcore/patchcore_effnetlite0_sample.py",
            str(tmp_path / "tiles" / "epoch_1.pth"),
            "--data-root",
            str(tiny_data),
            "--category",
            "tiles",
            "--work-dir",
            str(tmp_path / "t"),
            *TINY,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    tested = json.loads((tmp_path / "t" / "tiles" / "results.json").read_text())
    assert tested["image"] == saved["image"]


def test_python_api_train_and_train_models(tiny_data, tmp_path):
    overrides = dict(
        model__backbone__weights=None,
        train_dataloader__dataset__pipeline__1__size=64,
        test_dataloader__dataset__pipeline__2__size=64,
    )
    result = train(
        "sample",
        "tiles",
        "patchcore_effnetlite0_mvtec",
        data_root=tiny_data,
        work_dir=tmp_path / "one",
        **overrides,
    )
    assert result["dataset"] == "sample" and result["category"] == "tiles"
    assert (tmp_path / "one" / "tiles" / "results.json").is_file()
    results = train_models(
        ["patchcore_effnetlite0_mvtec"],
        "sample",
        ["disk", "tiles"],
        data_root=tiny_data,
        work_dir=tmp_path / "many",
        **overrides,
    )
    assert [(r["config"], r["category"]) for r in results] == [
        ("patchcore_effnetlite0_mvtec", "disk"),
        ("patchcore_effnetlite0_mvtec", "tiles"),
    ]
    assert (tmp_path / "many" / "patchcore_effnetlite0_mvtec" / "disk" / "results.json").is_file()


def test_use_dataset_swaps_dataset_and_keeps_pipelines():
    cfg = load_config("patchcore_wrn50_mvtec")
    pipeline = cfg.test_dataloader.dataset.pipeline
    use_dataset(cfg, "visa")
    assert cfg.test_dataloader.dataset.type == "VisA"
    assert cfg.test_dataloader.dataset.pipeline == pipeline
    assert cfg.train_dataloader.dataset.split == "train"
