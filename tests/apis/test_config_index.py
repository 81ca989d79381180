"""Default configs come from a `default = True` marker in the config folders."""

from typer.testing import CliRunner

from adtool.apis.config_index import (
    config_root,
    default_config,
    is_default_config,
    list_configs,
    resolve_config,
)
from adtool.cli import app
from adtool.errors import ConfigError

# The paper's setting of each model (what `adtool train <model>` has always meant).
PAPER_DEFAULTS = {
    "patchcore": "patchcore_wrn50_mvtec",
    "padim": "padim_wrn50_mvtec",
    "dfm": "dfm_r50_mvtec",
    "stfpm": "stfpm_r18_mvtec",
    "fastflow": "fastflow_wrn50_mvtec",
    "reverse_distillation": "reverse_distillation_wrn50_mvtec",
    "fre": "fre_r50_mvtec",
    "efficientad": "efficientad_s_mvtec",
    "vit": "vit_base_imagefolder",
    "dfine": "dfine_hgnetv2-s_coco",
    "eomt": "eomt_vit-l_ade",
    "swin2sr": "swin2sr_x2_div2k",
    "autoencoder": "autoencoder_conv_mvtec",
    "ganomaly": "ganomaly_mvtec",
    "cflow": "cflow_wrn50_mvtec",
    "dfkde": "dfkde_r18_mvtec",
    "cfa": "cfa_wrn50_mvtec",
    "draem": "draem_mvtec",
    "uflow": "uflow_mcait_mvtec",
    "csflow": "csflow_effnetb5_mvtec",
    "supersimplenet": "supersimplenet_wrn50_mvtec",
    "uninet": "uninet_wrn50_mvtec",
    "dinomaly": "dinomaly_vit-b14-reg4_448_mvtec",
    "dsr": "dsr_mvtec",
}


def test_short_names_resolve_to_the_paper_configs():
    for model, stem in PAPER_DEFAULTS.items():
        assert resolve_config(model).stem == stem, model


def test_each_model_folder_marks_exactly_one_default():
    folders = sorted({p.parent.name for p in list_configs()})
    assert set(folders) >= set(PAPER_DEFAULTS)
    for folder in folders:
        marked = [p.stem for p in (config_root() / folder).glob("*.py") if is_default_config(p)]
        assert len(marked) == 1, f"{folder}: {marked}"
        assert default_config(folder).stem == marked[0]


def test_marker_is_read_from_the_file_not_inherited(tmp_path, monkeypatch):
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "toy_big_mvtec.py").write_text("default = True\nx = 1\n")
    # Inherits the marked config, so its merged config has default=True, but it is not it.
    (folder / "toy_small_mvtec.py").write_text('_base_ = "./toy_big_mvtec.py"\nx = 2\n')
    (folder / "toy_other_mvtec.py").write_text("default = False\n")
    monkeypatch.setenv("ADTOOL_CONFIG_DIR", str(tmp_path))
    assert default_config("toy").stem == "toy_big_mvtec"
    assert resolve_config("toy").stem == "toy_big_mvtec"


def test_two_marked_defaults_are_refused(tmp_path, monkeypatch):
    folder = tmp_path / "toy"
    folder.mkdir()
    for name in ("toy_a_mvtec", "toy_b_mvtec"):
        (folder / f"{name}.py").write_text("default = True\n")
    monkeypatch.setenv("ADTOOL_CONFIG_DIR", str(tmp_path))
    try:
        default_config("toy")
    except ConfigError as e:
        assert "toy_a_mvtec.py, toy_b_mvtec.py" in str(e)
    else:
        raise AssertionError("two defaults must be an error")


def test_list_configs_marks_the_defaults():
    out = CliRunner().invoke(app, ["list-configs"], terminal_width=200)
    assert out.exit_code == 0, out.output
    starred = {
        line.split("│")[2].strip()
        for line in out.output.splitlines()
        if line.count("│") >= 4 and line.split("│")[3].strip() == "*"
    }
    assert starred == set(PAPER_DEFAULTS.values())
