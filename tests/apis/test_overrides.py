"""--cfg-options keys the config does not have are errors naming the closest key."""

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adtool.apis import load_config
from adtool.apis.overrides import check_override_keys, runner_keys
from adtool.cli import app
from adtool.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
CONFIG = "patchcore_effnetlite0_sample"


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "modle.head.coreset_ratio=0.1",
            "'modle' is not a key of the config; did you mean 'model'",
        ),
        ("model.hed.coreset_ratio=0.1", "PatchCore at 'model' does not accept the key 'hed'; "),
        ("model.head.num_neighbor=3", "KNNMemoryHead at 'model.head' does not accept the key "),
        ("test_dataloder.batch_size=2", "did you mean 'test_dataloader'"),
    ],
)
def test_unknown_key_is_refused_with_the_closest_name(option, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as info:
        load_config(CONFIG, [option])
    assert "\n" not in str(info.value) and option.split("=")[0] in str(info.value)


def test_nested_typo_names_the_valid_key():
    with pytest.raises(ConfigError, match="did you mean 'num_neighbors'"):
        load_config(CONFIG, ["model.head.num_neighbor=3"])
    with pytest.raises(ConfigError, match="did you mean 'head'"):
        load_config(CONFIG, ["model.hed.coreset_ratio=0.1"])


def test_valid_overrides_still_merge():
    cfg = load_config(
        CONFIG,
        [
            "model.head.num_neighbors=3",
            "model.backbone.weights=None",
            # mmengine Runner keywords and adtool's own top-level keys, absent from the file.
            "work_dir=elsewhere",
            "randomness.seed=1",
            "test_from=best",
            # A list index, a new hook (default_hooks has no type) and a new type's key.
            "train_dataloader.dataset.pipeline.1.size=64",
            "default_hooks.extra.type=EmptyCacheHook",
            "model.head.type=KNNMemoryHead",
        ],
    )
    assert cfg.model.head.num_neighbors == 3 and cfg.work_dir == "elsewhere"
    assert cfg.randomness.seed == 1 and cfg.test_from == "best"
    assert cfg.train_dataloader.dataset.pipeline[1].size == 64


def test_a_key_the_new_type_accepts_passes():
    # Changing the loop type in the same command: its keys are checked against the new type.
    cfg = load_config(
        CONFIG,
        ["train_cfg.type=EpochBasedTrainLoop", "train_cfg.max_epochs=2"],
    )
    assert cfg.train_cfg.max_epochs == 2
    with pytest.raises(ConfigError, match="FitLoop at 'train_cfg' does not accept the key"):
        load_config(CONFIG, ["train_cfg.max_epochs=2"])


def test_runner_keys_come_from_mmengine():
    assert {"work_dir", "load_from", "resume", "launcher", "randomness"} <= runner_keys()
    assert "cfg" not in runner_keys() and "self" not in runner_keys()
    check_override_keys({"model": {}}, {"env_cfg.cudnn_benchmark": True})


def test_print_config_refuses_a_nested_typo_with_exit_2():
    result = CliRunner().invoke(
        app, ["print-config", CONFIG, "--cfg-options", "model.head.num_neighbor=3"]
    )
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "did you mean 'num_neighbors'" in lines[0]
    ok = CliRunner().invoke(
        app, ["print-config", CONFIG, "--cfg-options", "model.head.num_neighbors=3"]
    )
    assert ok.exit_code == 0 and "num_neighbors=3" in ok.output


def test_tools_train_refuses_a_top_level_typo_before_writing(tmp_path):
    work = tmp_path / "work"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "tools" / "train.py"),
            CONFIG,
            "--work-dir",
            str(work),
            "--cfg-options",
            "modle.head.coreset_ratio=0.1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "did you mean 'model'" in lines[0], proc.stderr
    assert not work.exists()
