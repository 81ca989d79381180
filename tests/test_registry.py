import pytest

from adtool.errors import ConfigError
from adtool.registry import MODELS


def test_unknown_key_names_key_component_and_closest_valid_name():
    with pytest.raises(ConfigError) as err:
        MODELS.build(dict(type="KNNMemoryHead", coreset_ratoi=0.1))
    msg = str(err.value)
    assert "coreset_ratoi" in msg and "KNNMemoryHead" in msg and "'coreset_ratio'" in msg


def test_unknown_key_inside_a_nested_component_is_caught():
    cfg = dict(
        type="PatchCore",
        backbone=dict(type="TimmBackbone", arch="resnet18", weights=None, out_indice=(2, 3)),
        neck=dict(type="LocalPatchAggregator"),
        head=dict(type="KNNMemoryHead"),
    )
    with pytest.raises(ConfigError, match="did you mean 'out_indices'"):
        MODELS.build(cfg)


def test_unknown_type_suggests_registered_name():
    with pytest.raises(ConfigError, match="did you mean 'PatchCore'"):
        MODELS.build(dict(type="PatchCor"))


def test_valid_config_builds():
    head = MODELS.build(dict(type="KNNMemoryHead", coreset_ratio=0.5, num_neighbors=3))
    assert head.coreset_ratio == 0.5 and head.num_neighbors == 3
