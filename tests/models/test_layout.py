"""One folder per method: discovery, a new method in its own folder, old checkpoints.

* every folder under ``adtool/models/anomaly/`` is imported (and so registered) with no
  list to edit;
* a toy method dropped there as a new folder, plus one config file, trains and tests
  through the ordinary run path: three files, nothing else touched;
* checkpoints written before the move (same attribute names, no ``postprocessor.*``
  keys) load strictly into the models of the new layout.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import torch
from mmengine.runner import load_checkpoint

import adtool
import adtool.models.anomaly as anomaly
from adtool.apis import load_config
from adtool.models.anomaly import MemoryBankModel
from adtool.registry import MODELS

REPO = Path(adtool.__file__).resolve().parent.parent
METHODS = ["dfm", "fastflow", "padim", "patchcore", "reverse_distillation", "stfpm"]


def test_every_method_folder_is_discovered_and_registered():
    folder = Path(anomaly.__file__).parent
    on_disk = sorted(
        p.name for p in folder.iterdir() if p.is_dir() and (p / "__init__.py").is_file()
    )
    assert anomaly.method_packages() == on_disk
    assert set(METHODS) <= set(on_disk)
    for name in on_disk:
        module = sys.modules[f"adtool.models.anomaly.{name}"]
        assert (Path(module.__file__).parent / "model.py").is_file(), name
        for cls_name in module.__all__:
            assert MODELS.get(cls_name) is getattr(module, cls_name), cls_name


def test_shared_folders_hold_only_parts_two_methods_use():
    from adtool.models import heads, losses, necks

    assert necks.__all__ == ["AvgPoolNeck"]
    assert heads.__all__ == ["FeatureDistanceHead", "ReverseDecoder"]  # RD, UniNet
    # FocalLoss and SSIMLoss: the issue-14 reconstruction methods (autoencoder, DRAEM, DSR).
    assert losses.__all__ == ["CosineFeatureLoss", "FocalLoss", "SSIMLoss", "ssim_distance_map"]


_TOY_MODEL = '''
    """Toy method: distance of each pixel's colour to the mean training colour."""

    import torch

    from adtool.models.anomaly.base import MemoryBankModel
    from adtool.registry import MODELS


    @MODELS.register_module()
    class {name}(MemoryBankModel):
        def __init__(self, data_preprocessor=None):
            super().__init__(data_preprocessor=data_preprocessor)
            self.register_buffer("mean", torch.zeros(3))

        def embed(self, inputs):
            return inputs.mean((2, 3))

        def fit_embeddings(self, embeddings):
            self.mean.copy_(embeddings.mean(0))

        def anomaly_outputs(self, inputs):
            patch = (inputs - self.mean[:, None, None]).norm(dim=1)
            maps = self.to_input_map(patch, inputs.shape[-2:], blur_sigma=1.0)
            return self.image_score_from_map(maps), maps
'''

_TOY_CONFIG = """
    _base_ = [
        "{configs}/_base_/datasets/sample.py",
        "{configs}/_base_/default_runtime.py",
        "{configs}/_base_/schedules/fit.py",
    ]
    image_size = 32
    model = dict(
        type="{name}",
        data_preprocessor=dict(type="AnomalyDataPreprocessor", mean=[127.5] * 3, std=[127.5] * 3),
    )
    val_dataloader = None
    val_evaluator = None
"""


def test_a_new_method_touches_only_its_folder_and_config(tiny_data, tmp_path):
    """Drop a method folder into the package and a config beside it; train and test it."""
    tag = uuid.uuid4().hex[:8]
    name = f"ToyMethod{tag}"
    folder = Path(anomaly.__file__).parent / f"toy_{tag}"
    config = tmp_path / f"toy_{tag}_sample.py"
    created = [folder / "__init__.py", folder / "model.py", config]
    try:
        folder.mkdir()
        created[0].write_text(f"from .model import {name}\n\n__all__ = ['{name}']\n")
        created[1].write_text(textwrap.dedent(_TOY_MODEL.format(name=name)))
        config.write_text(textwrap.dedent(_TOY_CONFIG.format(configs=REPO / "configs", name=name)))
        script = textwrap.dedent(f"""
            import json
            import adtool.models.anomaly as anomaly
            from adtool.apis import load_config, run_category
            assert "toy_{tag}" in anomaly.method_packages()
            cfg = load_config({str(config)!r})
            cfg.test_dataloader.dataset.data_root = {str(tiny_data)!r}
            cfg.train_dataloader.dataset.data_root = {str(tiny_data)!r}
            result = run_category(cfg, "tiles", {str(tmp_path / "out")!r})
            print(json.dumps(dict(model=result["model"], pixel=result["pixel"])))
        """)
        env = dict(os.environ, PYTHONPATH=str(REPO))
        proc = subprocess.run(
            [sys.executable, "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        summary = json.loads(proc.stdout.strip().splitlines()[-1])
        assert summary["model"] == name
        assert summary["pixel"] is not None  # it has maps, and the sample data has masks
        assert (tmp_path / "out" / "results.json").is_file()
        # The method is three files: its folder's two and its config.
        written = sorted(
            p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts
        )
        assert written == sorted(created[:2]) and config.is_file()
        assert len(created) == 3
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------- old checkpoints

# Top-level modules of each model's state_dict as the code before the move named them
# (git main at f38d84b); the full key lists were compared once and only
# ``postprocessor.*`` is new.
OLD_PREFIXES = {
    "patchcore_r18_mvtec": {"backbone", "head"},
    "padim_r18_mvtec": {"backbone", "neck", "head"},
    "stfpm_r18_mvtec": {"teacher", "student"},
    "fastflow_r18_mvtec": {"backbone", "neck", "head"},
    "reverse_distillation_effnetlite0_mvtec": {"backbone", "neck", "decoder"},
}


def _tiny_model(config):
    options = {}
    cfg = load_config(config)
    for key in ("backbone", "teacher", "student"):
        if key in cfg.model:
            options[f"model.{key}.weights"] = None
    if cfg.model.type == "FastFlow":
        options["model.input_size"] = 64
    return MODELS.build(load_config(config, options).model)


@pytest.mark.parametrize("config", sorted(OLD_PREFIXES))
def test_checkpoint_from_before_the_move_loads_strictly(config, tmp_path):
    torch.manual_seed(0)
    source = _tiny_model(config)
    if isinstance(source, MemoryBankModel):  # a fitted bank or statistics in the file
        with torch.no_grad():
            source.fit_embeddings(source.embed(torch.randn(6, 3, 64, 64)))
    state = {k: v for k, v in source.state_dict().items() if not k.startswith("postprocessor.")}
    assert {k.split(".")[0] for k in state} == OLD_PREFIXES[config]
    path = tmp_path / "old.pth"
    torch.save({"meta": {"epoch": 1}, "state_dict": state}, path)

    torch.manual_seed(1)
    model = _tiny_model(config)
    load_checkpoint(model, str(path), map_location="cpu", strict=True)
    loaded = model.state_dict()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key
    assert model.postprocessor.thresholds() is None
    x = torch.randn(2, 3, 64, 64)
    model.eval()
    source.eval()
    scores, maps = model.anomaly_outputs(x)
    ref_scores, ref_maps = source.anomaly_outputs(x)
    torch.testing.assert_close(scores, ref_scores)
    torch.testing.assert_close(maps, ref_maps)
