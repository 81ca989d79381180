"""DSR: nearest-codebook quantisation, codebook-space anomalies, the phase switch and
what each phase freezes, the VQ model's sources, maps."""

import pytest
import torch
from mmengine.logging import MessageHub

from adtool.engine.optim import MultiOptimWrapperConstructor
from adtool.errors import ConfigError, WeightsNotFoundError
from adtool.models.anomaly.dsr.model import VQ_LOADED, VQ_TRAINED
from adtool.models.anomaly.dsr.vq import VectorQuantizer, codebook_anomalies
from adtool.registry import MODELS
from adtool.structures import AnomalyDataSample

PREPROCESSOR = dict(type="AnomalyDataPreprocessor", mean=[0.0] * 3, std=[255.0] * 3)
TINY = dict(
    embedding_dim=8,
    num_embeddings=40,
    hidden=8,
    residual_hidden=4,
    anomaly_width=4,
    upsampling_width=4,
    score_kernel=5,
)


def _model(**kwargs):
    torch.manual_seed(0)
    cfg = dict(type="DSR", data_preprocessor=PREPROCESSOR, **TINY)
    return MODELS.build(dict(cfg, **kwargs))


def _optim(model):
    adam = dict(type="OptimWrapper", optimizer=dict(type="Adam", lr=1e-2))
    return MultiOptimWrapperConstructor(
        dict(vq=adam, reprojection=dict(adam), upsampling=dict(adam))
    )(model)


def _batch(n=2, size=64):
    g = torch.Generator().manual_seed(3)
    clean = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    samples = []
    for c in clean:
        s = AnomalyDataSample()
        mask = torch.zeros(size, size, dtype=torch.uint8)
        mask[8:40, 16:56] = 1
        s.gt_mask = mask
        s.set_field(c, "img_clean")
        samples.append(s)
    return dict(inputs=list(clean), data_samples=samples)


def _at_epoch(epoch):
    MessageHub.get_current_instance().update_info("epoch", epoch)


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(module, before):
    return any(not torch.equal(v, before[k]) for k, v in module.state_dict().items())


# ---------------------------------------------------------------------------- quantiser


def test_quantizer_picks_the_nearest_codebook_entry():
    torch.manual_seed(0)
    vq = VectorQuantizer(50, 6)
    x = torch.randn(2, 6, 5, 7, requires_grad=True)
    flat = x.detach().permute(0, 2, 3, 1).reshape(-1, 6)
    expected = torch.cdist(flat, vq.codebook).argmin(1).reshape(2, 5, 7)
    assert torch.equal(vq.indices(x), expected)
    out = vq(x)
    assert torch.allclose(out, vq.codebook[expected].permute(0, 3, 1, 2), atol=1e-6)
    # Straight-through: the gradient of the quantisation is the identity.
    out.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_ema_update_with_no_decay_moves_entries_to_the_mean_of_their_features():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 3, decay=0.0)
    x = torch.randn(1, 3, 4, 4)
    flat = x.permute(0, 2, 3, 1).reshape(-1, 3)
    vq.init_from(flat)  # what the first update of a fresh codebook does
    assert (torch.cdist(vq.codebook, flat).amin(1) < 1e-2).all()
    idx = vq.indices(x).flatten()
    vq.ema_update(x)
    for k in idx.unique():
        assert torch.allclose(vq.codebook[k], flat[idx == k].mean(0), atol=1e-5)


# ---------------------------------------------------------------------------- anomalies


def test_codebook_anomalies_change_only_masked_positions_within_the_rank_band():
    torch.manual_seed(0)
    num = 100
    vq = VectorQuantizer(num, 4)
    z = torch.randn(2, 4, 8, 8)
    q = vq(z)
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 8:24, 0:16] = 1  # positions [2:6, 0:4] at 8 x 8
    strength = torch.tensor([0.2, 1.0])
    out = codebook_anomalies(z, q, vq, mask, strength, generator=torch.Generator().manual_seed(1))
    inside = torch.zeros(8, 8, dtype=torch.bool)
    inside[2:6, 0:4] = True
    assert torch.equal(out[:, :, ~inside], q[:, :, ~inside])
    # Inside: a codebook entry whose distance rank to z is in [5% K, strength K].
    order = vq.distances(z).argsort(-1)
    for b, top in ((0, int(0.2 * num) + 1), (1, num - 1)):
        new = vq.indices(out)[b][inside]
        ranks = (order[b][inside] == new[:, None]).float().argmax(1)
        assert torch.allclose(vq.lookup(vq.indices(out))[b][:, inside], out[b][:, inside])
        assert ranks.min() >= int(0.05 * num) and ranks.max() < top
        assert (new != vq.indices(q)[b][inside]).all()  # never the nearest entry


def test_latent_anomalies_leave_unmasked_images_untouched():
    model = _model(vq_weights=None, vq_epochs=1, upsampling_epoch=2)
    clean = torch.rand(3, 3, 64, 64)
    masks = torch.zeros(3, 64, 64)
    lat = model.latent_anomalies(clean, masks)
    assert torch.equal(lat["a_top"], lat["q_top"]) and torch.equal(lat["a_bottom"], lat["q_bottom"])
    assert not lat["mask"].any()
    masks[:, :32, :32] = 1
    lat = model.latent_anomalies(clean, masks)
    # Each image carries the anomaly in one or both levels, and the target says where.
    changed = (lat["a_top"] != lat["q_top"]).flatten(1).any(1) | (
        lat["a_bottom"] != lat["q_bottom"]
    ).flatten(1).any(1)
    assert changed.all()
    assert lat["mask"][:, :32, :32].all() and not lat["mask"][:, 32:, 32:].any()


# ---------------------------------------------------------------------------- phases


def test_phases_switch_at_the_configured_epochs():
    model = _model(vq_weights=None, vq_epochs=2, upsampling_epoch=5)
    assert [model.phase_at(e) for e in range(7)] == ["vq"] * 2 + ["reprojection"] * 3 + [
        "upsampling"
    ] * 2
    model.vq_state.fill_(VQ_LOADED)  # a loaded VQ model skips its stage
    assert [model.phase_at(e) for e in (0, 4, 5)] == ["reprojection"] * 2 + ["upsampling"]
    with pytest.raises(ConfigError, match="upsampling_epoch"):
        _model(vq_weights=None, vq_epochs=3, upsampling_epoch=3)


@pytest.mark.parametrize(
    "epoch, trained", [(0, "vq"), (1, "reprojection"), (2, "reprojection"), (3, "upsampling")]
)
def test_each_phase_trains_its_module_only_and_freezes_the_rest(epoch, trained):
    model = _model(vq_weights=None, vq_epochs=1, upsampling_epoch=3)
    optim = _optim(model)
    before = {
        name: _snapshot(getattr(model, name)) for name in ("vq", "reprojection", "upsampling")
    }
    _at_epoch(epoch)
    try:
        log = model.train_step(_batch(), optim)
    finally:
        _at_epoch(0)
    assert model.phase == trained
    for name in before:
        module = getattr(model, name)
        assert _changed(module, before[name]) == (name == trained), name
        grads = {p.requires_grad for p in module.parameters() if p.dtype.is_floating_point}
        # The codebooks never take gradients (EMA only); everything else follows the phase.
        assert grads <= {name == trained, False}
    expected = {
        "vq": {"loss_vq_recon", "loss_vq_commit"},
        "reprojection": {"loss_top", "loss_bottom", "loss_image", "loss_focal"},
        "upsampling": {"loss_upsampling"},
    }[trained]
    assert set(log) == expected | {"loss"}
    assert int(model.vq_state) == (VQ_TRAINED if trained == "vq" else 0)


def test_train_step_refuses_a_single_optimiser():
    model = _model(vq_weights=None, vq_epochs=1, upsampling_epoch=2)
    single = MultiOptimWrapperConstructor(
        dict(upsampling=dict(type="OptimWrapper", optimizer=dict(type="Adam", lr=1e-3)))
    )(model)
    with pytest.raises(ConfigError, match="reprojection"):
        model.train_step(_batch(), single)


# ---------------------------------------------------------------------------- VQ source


class _Loader:
    dataset = [0] * 5


def test_vq_model_loads_from_the_backbone_folder_under_the_official_names(tmp_path):
    source = _model(vq_weights=None, vq_epochs=1, upsampling_epoch=2)
    # Same tensors, the official code's key names (another naming, same order).
    official = {f"_k{i}": v for i, v in enumerate(source.vq.state_dict().values())}
    torch.save(official, tmp_path / "dsr_vq_imagenet.pth")
    model = _model(backbone_dir=str(tmp_path))
    model.before_train(_Loader())
    for key, value in source.vq.state_dict().items():
        assert torch.equal(model.vq.state_dict()[key], value), key
    assert int(model.vq_state) == VQ_LOADED and model.phase_at(0) == "reprojection"
    assert str(tmp_path / "dsr_vq_imagenet.pth") in model.results_info()["vq"]
    # A VQ model of another size is refused in one line.
    torch.save(official, tmp_path / "dsr_vq_other.pth")
    with pytest.raises(WeightsNotFoundError, match="not a DSR VQ model of this size"):
        _model(backbone_dir=str(tmp_path), embedding_dim=16).load_vq(tmp_path / "dsr_vq_other.pth")


def test_vq_model_loads_from_a_dsr_run_checkpoint_and_refuses_code(tmp_path):
    """A run's checkpoint (mmengine's message hub pickles HistoryBuffer) is a VQ source."""
    import os

    import numpy as np
    from mmengine.logging import HistoryBuffer

    from adtool.errors import DataError

    source = _model(vq_weights=None, vq_epochs=1, upsampling_epoch=2)
    buffer = HistoryBuffer()
    buffer.update(np.float64(0.5))
    checkpoint = {
        "meta": {"epoch": 10},
        "state_dict": source.state_dict(),
        "message_hub": {"log_scalars": {"train/loss": buffer}},
    }
    torch.save(checkpoint, tmp_path / "dsr_vq_natural.pth")
    model = _model(backbone_dir=str(tmp_path), vq_weights="natural")
    model.before_train(_Loader())
    for key, value in source.vq.state_dict().items():
        assert torch.equal(model.vq.state_dict()[key], value), key
    assert int(model.vq_state) == VQ_LOADED
    # A file that names code to run is refused in one line, not run.
    torch.save({"state_dict": {}, "x": os.system}, tmp_path / "dsr_vq_bad.pth")
    with pytest.raises(DataError, match="dsr_vq_bad.pth") as err:
        _model(backbone_dir=str(tmp_path)).load_vq(tmp_path / "dsr_vq_bad.pth")
    assert "\n" not in str(err.value)


def test_missing_vq_model_trains_here_or_names_the_files(tmp_path):
    model = _model(backbone_dir=str(tmp_path), vq_epochs=2, upsampling_epoch=4)
    model.before_train(_Loader())
    assert model.phase_at(0) == "vq"
    assert model.results_info()["vq"].startswith("trained here on 5 training images")
    with pytest.raises(WeightsNotFoundError, match="dsr_vq_imagenet.pth.*vq_epochs > 0"):
        _model(backbone_dir=str(tmp_path)).before_train(_Loader())


# ---------------------------------------------------------------------------- inference


def test_maps_scores_and_input_size():
    model = _model(vq_weights=None, vq_epochs=1, upsampling_epoch=2).eval()
    x = torch.rand(2, 3, 96, 64)
    scores, maps = model.anomaly_outputs(x)
    assert scores.shape == (2,) and maps.shape == (2, 96, 64)
    assert 0 <= maps.min() and maps.max() <= 1
    _, _, detection = model.detect(x)
    assert torch.allclose(scores, model.score_from_map(detection[:, 1]))
    with pytest.raises(ConfigError, match="divisible by 32"):
        model.anomaly_outputs(torch.rand(1, 3, 80, 80))


def test_residual_upsampling_starts_as_the_detection_map():
    model = _model(vq_weights=None, vq_epochs=1, upsampling_epoch=2, upsampling_residual=True)
    x = torch.rand(2, 3, 64, 64)
    _, maps = model.eval().anomaly_outputs(x)
    _, _, detection = model.detect(x)
    assert torch.allclose(maps, detection[:, 1], atol=1e-5)
    plain = _model(vq_weights=None, vq_epochs=1, upsampling_epoch=2).eval()
    assert not torch.allclose(plain.anomaly_outputs(x)[1], plain.detect(x)[2][:, 1], atol=1e-3)


def test_defaults_are_the_papers():
    model = MODELS.build(dict(type="DSR"))
    assert model.vq.vq_top.codebook.shape == (4096, 128)
    assert (model.anomaly_strength, model.image_loss_weight, model.score_kernel) == (0.2, 10.0, 21)
    assert model.vq_weights == "imagenet" and not model.upsampling_residual
