"""Wrong value types and unknown names stop at build time with one line (issue 11, 5-6)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from typer.testing import CliRunner

from adtool.cli import app, expand_cfg_options
from adtool.engine import AnomalyRunner
from adtool.errors import ConfigError
from adtool.registry import MODELS, describe_type, value_matches

TINY = [
    "model.backbone.weights=None",
    "train_dataloader.dataset.pipeline.1.size=64",
    "test_dataloader.dataset.pipeline.2.size=64",
]


@pytest.mark.parametrize(
    "cfg, needles",
    [
        (dict(coreset_ratio="abc"), ["'coreset_ratio' = 'abc'", "str", "expected float"]),
        (dict(num_neighbors=3.5), ["'num_neighbors' = 3.5", "float", "expected int"]),
        (dict(num_neighbors=True), ["'num_neighbors' = True", "bool", "expected int"]),
    ],
)
def test_wrong_value_type_names_key_value_and_type(cfg, needles):
    with pytest.raises(ConfigError) as e:
        MODELS.build(dict(type="KNNMemoryHead", **cfg))
    message = str(e.value)
    assert message.startswith("KNNMemoryHead: ") and "\n" not in message
    for needle in needles:
        assert needle in message, message


def test_int_is_a_float_and_nested_components_are_checked():
    head = MODELS.build(dict(type="KNNMemoryHead", coreset_ratio=1, num_neighbors=3))
    assert head.coreset_ratio == 1 and head.num_neighbors == 3
    cfg = dict(
        type="PatchCore",
        backbone=dict(type="TimmBackbone", arch="resnet18", weights=None, out_indices="23"),
        neck=dict(type="LocalPatchAggregator"),
        head=dict(type="KNNMemoryHead"),
    )
    with pytest.raises(ConfigError, match="'out_indices' = '23' is a str; expected a sequence"):
        MODELS.build(cfg)


def test_value_matches_simple_annotations():
    assert value_matches(3, float) and not value_matches(True, float)
    assert value_matches(None, int | None) and not value_matches("a", int | None)
    assert value_matches([1, 2], Sequence[int]) and value_matches((1, 2), tuple[int, ...])
    assert not value_matches([1, "a"], Sequence[int]) and not value_matches("ab", Sequence[int])
    assert not value_matches((1, 2, 3), tuple[int, int])
    assert value_matches(object(), float) is False and value_matches(1, type) is None
    assert describe_type(float | None) == "float or None"
    assert describe_type(Sequence[int]) == "a sequence of int"


@pytest.mark.parametrize(
    "option, needles",
    [
        ("train_dataloader.batchsize=4", ["train_dataloader", "'batchsize'", "'batch_size'"]),
        ("train_dataloader.batch_size=four", ["'batch_size' = 'four'", "expected int"]),
        # The test loader is built after training: checked up front all the same.
        ("test_dataloader.batch_size=four", ["test_dataloader", "'four'"]),
        ("model.type=PatchCor", ["'PatchCor'", "did you mean 'PatchCore'"]),
        ("model.backbone.arch=resnet999", ["'resnet999'", "close names: resnet"]),
        ("model.head.num_neighbors=3.5", ["'num_neighbors' = 3.5"]),
        ("modelx", ["'modelx' is not KEY=VALUE"]),
    ],
)
def test_cli_stops_before_work_with_one_line(option, needles, tiny_data, tmp_path):
    args = ["train", "patchcore_effnetlite0_sample", "--data-root", str(tiny_data)]
    args += ["--category", "tiles", "--work-dir", str(tmp_path), "--cfg-options", option, *TINY]
    result = CliRunner().invoke(app, expand_cfg_options(args))
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not list(tmp_path.glob("**/*.pth"))


def test_expand_cfg_options_keeps_a_value_without_equals():
    assert expand_cfg_options(["train", "c", "--cfg-options", "modelx"]) == [
        "train",
        "c",
        "--cfg-options",
        "modelx",
    ]


def test_dataloader_check_accepts_mmengine_keys():
    AnomalyRunner.check_dataloader_cfg(
        "train_dataloader",
        dict(
            batch_size=4,
            num_workers=0,
            persistent_workers=False,
            sampler=dict(type="DefaultSampler", shuffle=True),
            dataset=dict(type="MVTecAD"),
            collate_fn=dict(type="pseudo_collate"),
            num_batch_per_epoch=2,
        ),
    )
