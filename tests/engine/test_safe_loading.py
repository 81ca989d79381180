"""Checkpoints load with ``weights_only=True``: a crafted pickle never runs, real ones load."""

import os
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from adtool.apis import load_config, run_category
from adtool.apis.core import use_dataset
from adtool.cli import app, expand_cfg_options
from adtool.engine.compat import SAFE_GLOBALS, check_state_dict, load_checkpoint_file
from adtool.errors import DataError
from adtool.registry import MODELS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apis"))
from integration_helpers import tiny  # noqa: E402

SIZE = ["train_dataloader.dataset.pipeline.1.size=64", "test_dataloader.dataset.pipeline.2.size=64"]


class _Payload:
    """Unpickling this runs ``touch <marker>``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def payload(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.pth"
    torch.save({"meta": {}, "state_dict": {}, "message_hub": _Payload(marker)}, path)
    return path, marker


@pytest.fixture(scope="module")
def checkpoints(tiny_data, tmp_path_factory):
    """A fitted PatchCore and an STFPM trained 2 epochs with a step schedule."""
    root = tmp_path_factory.mktemp("ckpts")
    cfg = tiny("patchcore_effnetlite0_sample", tiny_data, 64, {"model.backbone.weights": None})
    run_category(cfg, "tiles", root / "patchcore")
    options = {
        "model.teacher.weights": None,
        "train_cfg.max_epochs": 2,
        "param_scheduler": dict(type="MultiStepLR", milestones=[1], by_epoch=True),
    }
    cfg = tiny("stfpm_effnetlite0_sample", tiny_data, 64, options)
    run_category(cfg, "tiles", root / "stfpm")
    return {
        "patchcore": root / "patchcore" / "epoch_1.pth",
        "stfpm": root / "stfpm" / "epoch_2.pth",
    }


def _one_line(message: str) -> None:
    assert "\n" not in message and len(message) < 400, message


def test_payload_does_not_run_through_load_checkpoint_file(payload):
    path, marker = payload
    with pytest.raises(DataError) as e:
        load_checkpoint_file(path)
    _one_line(str(e.value))
    assert str(path) in str(e.value) and "system" in str(e.value)
    assert not marker.exists()


def test_payload_does_not_run_through_runner_load_from(payload, tiny_data, tmp_path):
    path, marker = payload
    cfg = tiny("patchcore_effnetlite0_sample", tiny_data, 64, {"model.backbone.weights": None})
    with pytest.raises(DataError, match="evil.pth"):
        run_category(cfg, "tiles", tmp_path / "out", checkpoint=str(path))
    assert not marker.exists()


@pytest.mark.parametrize("command", ["test", "infer"])
def test_payload_does_not_run_through_tools(command, payload, tiny_data, tmp_path):
    path, marker = payload
    args = [command, "patchcore_effnetlite0_sample", str(path)]
    if command == "test":
        args += ["--data-root", str(tiny_data), "--category", "tiles"]
        args += ["--work-dir", str(tmp_path / "work")]
    else:
        args += [str(tiny_data / "tiles" / "test"), "--out", str(tmp_path / "out")]
    args += ["--cfg-options", "model.backbone.weights=None", *SIZE]
    result = CliRunner().invoke(app, expand_cfg_options(args))
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2, result.output
    assert len(errors) == 1 and "evil.pth" in errors[0], result.output
    assert "Traceback" not in result.output
    assert not marker.exists()


def test_real_checkpoints_need_only_the_allow_list(checkpoints):
    allowed = {
        name if isinstance(entry, tuple) else f"{entry.__module__}.{entry.__qualname__}"
        for entry in SAFE_GLOBALS
        for name in ([entry[1]] if isinstance(entry, tuple) else [None])
    }
    for path in checkpoints.values():
        needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
        assert needed, "an mmengine checkpoint holds a message hub beyond plain tensors"
        assert needed <= allowed, needed - allowed
    stfpm = load_checkpoint_file(checkpoints["stfpm"])
    assert stfpm["meta"]["epoch"] == 2
    assert dict(stfpm["param_schedulers"][0]["milestones"]) == {1: 1}  # a Counter
    assert "momentum_buffer" in next(iter(stfpm["optimizer"]["state"].values()))
    hub = stfpm["message_hub"]["log_scalars"]["train/loss"]
    assert hub.mean() > 0 and len(hub.data[0]) == 4  # 6 images, batch 4: 2 iters x 2 epochs


def test_restricted_getattr_refuses_other_attributes(tmp_path):
    from mmengine.logging import HistoryBuffer

    class _Reach:
        def __reduce__(self):
            return (getattr, (HistoryBuffer, "__init__"))

    torch.save({"x": _Reach()}, tmp_path / "reach.pth")
    with pytest.raises(DataError, match="reach.pth"):
        load_checkpoint_file(tmp_path / "reach.pth")


def test_truncated_and_foreign_files_are_one_line_errors(checkpoints, tmp_path):
    data = checkpoints["patchcore"].read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.pth").write_text("not a checkpoint")
    torch.save([1, 2], tmp_path / "list.pth")
    for name, needle in [("cut", "truncated"), ("text", "truncated"), ("list", "holds a list")]:
        with pytest.raises(DataError) as e:
            load_checkpoint_file(tmp_path / f"{name}.pth")
        _one_line(str(e.value))
        assert f"{name}.pth" in str(e.value) and needle in str(e.value)


def _model(config: str):
    cfg = load_config(config)
    use_dataset(cfg, "sample")
    for key in ("backbone", "teacher"):
        if key in cfg.model:
            cfg.model[key]["weights"] = None
    return MODELS.build(cfg.model)


def test_check_state_dict_accepts_its_own_fitted_checkpoint(checkpoints):
    state = load_checkpoint_file(checkpoints["patchcore"])["state_dict"]
    model = _model("patchcore_effnetlite0_sample")
    # The fitted bank is larger than the empty one of a new model: the head adapts it.
    assert state["head.memory_bank"].shape != model.state_dict()["head.memory_bank"].shape
    check_state_dict(model, state, checkpoints["patchcore"])


def test_check_state_dict_names_another_model(checkpoints):
    state = load_checkpoint_file(checkpoints["stfpm"])["state_dict"]
    with pytest.raises(DataError) as e:
        check_state_dict(_model("patchcore_effnetlite0_sample"), state, checkpoints["stfpm"])
    message = str(e.value)
    _one_line(message)
    assert "epoch_2.pth" in message and "student.*" in message and "backbone.*" in message


def test_check_state_dict_names_another_backbone(checkpoints):
    state = load_checkpoint_file(checkpoints["patchcore"])["state_dict"]
    model = _model("patchcore_r18_mvtec")
    with pytest.raises(DataError) as e:
        check_state_dict(model, state, "pc.pth")
    message = str(e.value)
    _one_line(message)
    assert "pc.pth" in message and "missing" in message and "backbone." in message
    # Same keys, other shapes: a wider layer of the same architecture.
    same = {k: v.clone() for k, v in model.state_dict().items()}
    key = next(k for k in same if k.endswith("conv1.weight"))
    same[key] = torch.zeros(32, 3, 7, 7)
    with pytest.raises(DataError, match=r"differ in shape .*checkpoint \(32, 3, 7, 7\) vs model"):
        check_state_dict(model, same, "pc.pth")


def test_check_state_dict_counts_batch_norm_shapes_but_not_dropped_stages():
    model = _model("patchcore_effnetlite0_sample")
    state = dict(model.state_dict())
    # A checkpoint written before the backbone dropped its unused stages still fits.
    state["backbone.model.blocks.6.0.conv_pw.weight"] = torch.zeros(1)
    check_state_dict(model, state, "old.pth")
    # timm's BatchNormAct2d overrides _load_from_state_dict, yet its shapes are checked.
    state["backbone.model.bn1.weight"] = torch.zeros(7)
    with pytest.raises(DataError, match=r"bn1.weight': checkpoint \(7,\) vs model \(32,\)"):
        check_state_dict(model, state, "old.pth")
