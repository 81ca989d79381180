"""Issue 11 items 2, 7, 8 and 14: category names that escape the work dir, checkpoints of
another model or backbone, truncated or corrupt files, outputs that cannot be written, and
the number of classes read from the data. Each fails on the code before the fix."""

import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from adtool.apis import load_config, run
from adtool.apis.checkpoints import check_state_dict
from adtool.cli import app, expand_cfg_options
from adtool.errors import ConfigError, DataError
from adtool.registry import MODELS, register_all_modules

CONFIG = "patchcore_effnetlite0_sample"
TINY = [
    "model.backbone.weights=None",
    "train_dataloader.dataset.pipeline.1.size=64",
    "test_dataloader.dataset.pipeline.2.size=64",
]


def one_line(result) -> str:
    """The CLI's error output, checked to be one line without a traceback."""
    text = result.output.strip()
    assert "Traceback" not in text and len(text.splitlines()) == 1, text
    return text


def cli(args: list[str]):
    return CliRunner().invoke(app, expand_cfg_options(args))


def save_model_checkpoint(config: str, options: list[str], path: Path) -> Path:
    """A checkpoint of ``config``'s untrained model, with the config in its meta as
    mmengine writes it."""
    register_all_modules()
    cfg = load_config(config, options)
    model = MODELS.build(cfg.model)
    torch.save({"state_dict": model.state_dict(), "meta": {"cfg": cfg.pretty_text}}, path)
    return path


@pytest.fixture(scope="module")
def patchcore_ckpt(tmp_path_factory):
    return save_model_checkpoint(CONFIG, TINY, tmp_path_factory.mktemp("ck") / "patchcore.pth")


# -------------------------------------------------------------- 2: category names


@pytest.mark.parametrize("category", ["../victim", "..", "a/b", "<abs>/victim", "x\\y"])
def test_category_that_escapes_the_work_dir_is_refused_before_writing(
    category, tiny_data, tmp_path
):
    work = tmp_path / "work"
    category = category.replace("<abs>", str(tmp_path))
    with pytest.raises(ConfigError, match="is not a folder name"):
        run(CONFIG, data_root=tiny_data, category=category, work_dir=work, cfg_options=TINY)
    assert not (tmp_path / "victim").exists()
    assert not work.exists()  # nothing written at all


def test_cli_category_escape_is_one_line(tiny_data, tmp_path):
    out = cli(
        ["train", CONFIG, "--data-root", str(tiny_data), "--category", "../victim",
         "--work-dir", str(tmp_path / "work"), "--cfg-options", *TINY],
    )  # fmt: skip
    assert out.exit_code == 2
    assert "category '../victim'" in one_line(out)
    assert not (tmp_path / "victim").exists()


# ------------------------------------------------------------ 7: wrong checkpoints


def test_checkpoint_of_another_model_names_both(tiny_data, tmp_path):
    padim = save_model_checkpoint(
        "padim_effnetlite0_mvtec", ["model.backbone.weights=None"], tmp_path / "padim.pth"
    )
    with pytest.raises(DataError) as err:
        run(CONFIG, checkpoint=str(padim), data_root=tiny_data, category="tiles",
            work_dir=tmp_path / "w", cfg_options=TINY)  # fmt: skip
    message = str(err.value)
    assert str(padim) in message and "\n" not in message
    assert "holds PaDiM" in message and "builds PatchCore" in message


def test_checkpoint_of_another_backbone_names_both(tiny_data, tmp_path):
    r18 = save_model_checkpoint(
        CONFIG, [*TINY, "model.backbone.arch=resnet18"], tmp_path / "r18.pth"
    )
    out = cli(
        ["test", CONFIG, str(r18), "--data-root", str(tiny_data), "--category", "tiles",
         "--work-dir", str(tmp_path / "w"), "--cfg-options", *TINY],
    )  # fmt: skip
    assert out.exit_code == 2
    text = one_line(out)
    assert str(r18) in text.replace("\n", "")
    assert "backbone resnet18" in text and "backbone tf_efficientnet_lite0" in text


def test_shape_mismatch_names_the_parameter_and_channels(tmp_path):
    class Net(torch.nn.Module):
        def __init__(self, width):
            super().__init__()
            self.backbone = torch.nn.Conv2d(3, width, 3)

    saved = {"state_dict": Net(16).state_dict()}
    with pytest.raises(DataError) as err:
        check_state_dict(Net(8), saved, tmp_path / "w.pth")
    message = str(err.value)
    assert "backbone 'backbone.weight'" in message and "channels 16 vs 8" in message


def test_truncated_checkpoint_is_one_line(patchcore_ckpt, tiny_data, tmp_path):
    cut = tmp_path / "cut.pth"
    data = patchcore_ckpt.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    out = cli(
        ["test", CONFIG, str(cut), "--data-root", str(tiny_data), "--category", "tiles",
         "--work-dir", str(tmp_path / "w"), "--cfg-options", *TINY],
    )  # fmt: skip
    assert out.exit_code == 2
    text = one_line(out)
    assert str(cut) in text and "cannot be read" in text


def test_resume_with_a_corrupt_last_checkpoint_is_one_line(patchcore_ckpt, tiny_data, tmp_path):
    work = tmp_path / "work" / "tiles"
    work.mkdir(parents=True)
    last = work / "epoch_1.pth"
    last.write_bytes(patchcore_ckpt.read_bytes()[:1000])
    (work / "last_checkpoint").write_text(str(last))
    with pytest.raises(DataError) as err:
        run(CONFIG, data_root=tiny_data, category="tiles", work_dir=tmp_path / "work",
            cfg_options=TINY, resume=True)  # fmt: skip
    assert str(last) in str(err.value) and "cannot be read" in str(err.value)


# ------------------------------------------------------- 8: outputs not writable


def test_work_dir_that_cannot_be_written_is_one_line_before_work(tiny_data, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = cli(
        ["train", CONFIG, "--data-root", str(tiny_data), "--category", "tiles",
         "--work-dir", str(blocker / "work"), "--cfg-options", *TINY],
    )  # fmt: skip
    assert out.exit_code == 2
    text = one_line(out)
    assert str(blocker / "work") in text and "cannot be written" in text and "--work-dir" in text


def test_infer_out_that_cannot_be_written_is_one_line(patchcore_ckpt, tiny_data, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    images = tiny_data / "tiles" / "test"
    out = cli(
        ["infer", CONFIG, str(patchcore_ckpt), str(images), "--out", str(blocker / "o"),
         "--cfg-options", *TINY],
    )  # fmt: skip
    assert out.exit_code == 2
    text = one_line(out)
    assert str(blocker / "o") in text and "--out" in text


# ------------------------------------------------ 14: classes from the class folders


@pytest.fixture(scope="module")
def ten_classes(tmp_path_factory):
    pytest.importorskip("transformers")
    from adtool.datasets.hf import make_classification_dataset

    root = make_classification_dataset(
        tmp_path_factory.mktemp("cls10"), n_train_per_class=2, n_val_per_class=1, size=32
    )
    # 4 generated classes, copied under new names up to 10 class folders.
    for split in ("train", "val"):
        base = sorted(p for p in (root / split).iterdir() if p.is_dir())
        for i in range(10 - len(base)):
            shutil.copytree(base[i % len(base)], root / split / f"extra{i}")
    return root


VIT_TINY = {
    "train_cfg.max_epochs": 1,
    "param_scheduler.1.end": 1,
    "train_dataloader.batch_size": 8,
    "model.hf_config.image_size": 32,
    "model.hf_config.hidden_size": 32,
    "model.hf_config.num_hidden_layers": 1,
    "model.hf_config.num_attention_heads": 2,
    "model.hf_config.intermediate_size": 64,
    "image_size": 32,
    "train_dataloader.dataset.pipeline.1.size": 32,
    "test_dataloader.dataset.pipeline.1.size": 32,
}


def test_num_classes_comes_from_the_class_folders(ten_classes, tmp_path):
    result = run("vit_tiny_imagefolder", data_root=ten_classes, work_dir=tmp_path / "w",
                 cfg_options=VIT_TINY)[0]  # fmt: skip
    matrix = result["thresholds"]["confusion_matrix"]
    assert len(matrix["classes"]) == 10 and len(matrix["matrix"]) == 10
    assert result["n_train"] == 20 and result["n_test"] == 10


def test_explicit_conflicting_num_classes_stays_an_error(ten_classes, tmp_path):
    with pytest.raises(ConfigError) as err:
        run("vit_tiny_imagefolder", data_root=ten_classes, work_dir=tmp_path / "w",
            cfg_options={**VIT_TINY, "model.num_classes": 4})  # fmt: skip
    message = str(err.value)
    assert "model.num_classes=4" in message and "num_classes=10" in message
    assert not (tmp_path / "w" / "epoch_1.pth").exists()


def test_config_text_in_a_checkpoint_is_parsed_not_run(tmp_path):
    marker = tmp_path / "ran"
    text = f"import pathlib\npathlib.Path({str(marker)!r}).touch()\nmodel = dict(type='Evil')\n"
    saved = {"state_dict": {"other.weight": torch.ones(1)}, "meta": {"cfg": text}}
    with pytest.raises(DataError, match="holds Evil but the config builds"):
        check_state_dict(torch.nn.Linear(1, 1), saved, tmp_path / "evil.pth")
    assert not marker.exists()
