"""GANomaly: loss composition and weights, both optimisers step, latent-distance score."""

import pytest
import torch
from mmengine.optim import OptimWrapperDict

from adtool.engine.optim import MultiOptimWrapperConstructor
from adtool.errors import ConfigError
from adtool.registry import MODELS

PREPROCESSOR = dict(type="AnomalyDataPreprocessor", mean=[127.5] * 3, std=[127.5] * 3)


def _model(**kwargs):
    torch.manual_seed(0)
    cfg = dict(
        type="GANomaly",
        input_size=32,
        base_channels=8,
        latent_dim=16,
        data_preprocessor=PREPROCESSOR,
    )
    return MODELS.build(dict(cfg, **kwargs))


def _optim(model, lr=2e-4):
    adam = dict(type="Adam", lr=lr, betas=(0.5, 0.999))
    return MultiOptimWrapperConstructor(
        dict(
            generator=dict(type="OptimWrapper", optimizer=adam),
            discriminator=dict(type="OptimWrapper", optimizer=adam),
        )
    )(model)


def _batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(inputs=[torch.randint(0, 256, (3, 32, 32), generator=g, dtype=torch.uint8)] * n)


def test_defaults_are_the_papers():
    model = MODELS.build(dict(type="GANomaly"))
    assert (model.adv_weight, model.con_weight, model.enc_weight) == (1.0, 50.0, 1.0)
    assert model.input_size == 32
    assert model.generator.encoder1.final.out_channels == 100
    assert model.generator.encoder1.features[0].out_channels == 64


def test_generator_loss_is_1_adv_plus_50_con_plus_1_enc():
    model = _model()
    model.train()
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    torch.manual_seed(1)
    losses, fake = model.generator_losses(x)
    # The same terms computed here from the parts (BN in train mode: same batch statistics).
    fake2, z, z_hat = model.generator(x)
    _, f_real = model.discriminator(x)
    _, f_fake = model.discriminator(fake2)
    adv = ((f_real - f_fake) ** 2).mean()
    con = (x - fake2).abs().mean()
    enc = ((z - z_hat) ** 2).mean()
    assert torch.allclose(fake, fake2)
    assert torch.allclose(losses["loss_adv"], adv, rtol=1e-5)
    assert torch.allclose(losses["loss_con"], 50 * con, rtol=1e-5)
    assert torch.allclose(losses["loss_enc"], enc, rtol=1e-5)
    total = sum(losses.values())
    assert torch.allclose(total, 1 * adv + 50 * con + 1 * enc, rtol=1e-5)
    # Other weights scale their terms only.
    other = _model(adv_weight=2.0, con_weight=1.0, enc_weight=0.0)
    other.load_state_dict(model.state_dict())
    other.train()
    l2, _ = other.generator_losses(x)
    assert torch.allclose(l2["loss_adv"], 2 * adv, rtol=1e-5)
    assert torch.allclose(l2["loss_con"], con, rtol=1e-5)
    assert l2["loss_enc"] == 0


def test_discriminator_loss_is_halved_bce():
    model = _model()
    model.train()
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    fake = torch.rand(4, 3, 32, 32) * 2 - 1
    p_real, _ = model.discriminator(x)
    p_fake, _ = model.discriminator(fake)
    expected = 0.5 * (-torch.log(p_real).mean() - torch.log(1 - p_fake).mean())
    got = model.discriminator_losses(x, fake)["loss_disc"]
    assert torch.allclose(got, expected, rtol=1e-5)


def test_train_step_steps_both_networks_and_only_with_their_own_loss():
    model = _model()
    model.train()
    optim = _optim(model)
    assert isinstance(optim, OptimWrapperDict)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    log = model.train_step(_batch(), optim)
    assert {"loss_adv", "loss_con", "loss_enc", "loss_disc", "loss"} <= set(log)
    for part in ("generator.encoder1", "generator.decoder", "generator.encoder2", "discriminator"):
        changed = [
            k
            for k, v in model.state_dict().items()
            if k.startswith(part) and k.endswith("weight") and not torch.equal(v, before[k])
        ]
        assert changed, part
    # Each Adam took exactly one step on its own network's parameters.
    for name, module in (("generator", model.generator), ("discriminator", model.discriminator)):
        opt = optim[name].optimizer
        params = {id(p) for g in opt.param_groups for p in g["params"]}
        assert params == {id(p) for p in module.parameters()}
        assert all(float(s["step"]) == 1 for s in opt.state.values())

    # D's step used D's loss alone: with the generator's lr at 0 the generator is unchanged,
    # and D equals a D stepped by hand on loss_disc from the same start.
    model = _model()
    model.train()
    reference = _model()
    reference.train()
    optim = _optim(model)
    optim["generator"].optimizer.param_groups[0]["lr"] = 0.0
    g_before = {k: v.clone() for k, v in model.generator.state_dict().items() if "weight" in k}
    data = _batch()
    model.train_step(data, optim)
    for k, v in g_before.items():
        assert torch.equal(model.generator.state_dict()[k], v), k
    inputs = reference.data_preprocessor(data, True)["inputs"]
    with torch.no_grad():
        fake, _, _ = reference.generator(inputs)
    # The generator's forward in train_step also ran the discriminator in train mode twice
    # (real, fake); its BN running statistics moved, not its weights. Compare weights only.
    adam = torch.optim.Adam(reference.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    reference.discriminator_losses(inputs, fake)["loss_disc"].backward()
    adam.step()
    for (k, v), (_, w) in zip(
        model.discriminator.named_parameters(), reference.discriminator.named_parameters()
    ):
        assert torch.allclose(v, w, atol=1e-6), k


def test_train_step_refuses_a_single_optimiser():
    model = _model()
    from mmengine.optim import OptimWrapper

    single = OptimWrapper(torch.optim.Adam(model.parameters()))
    with pytest.raises(ConfigError, match="MultiOptimWrapperConstructor"):
        model.train_step(_batch(), single)


def test_score_is_latent_distance_and_no_map():
    model = _model()
    model.eval()
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    scores, maps = model.anomaly_outputs(x)
    _, z, z_hat = model.generator(x)
    assert maps is None
    assert torch.allclose(scores, ((z - z_hat) ** 2).flatten(1).mean(1))
    # Identical encoders give identical latents: score 0.
    model.generator.encoder2.load_state_dict(model.generator.encoder1.state_dict())
    fake = model.generator.decoder(model.generator.encoder1(x))
    z1, z2 = model.generator.encoder1(fake), model.generator.encoder2(fake)
    assert torch.equal(z1, z2)


def test_wrong_input_size_is_a_config_error():
    with pytest.raises(ConfigError, match="power of two"):
        MODELS.build(dict(type="GANomaly", input_size=96))
    model = _model()
    with pytest.raises(ConfigError, match="input_size"):
        model.anomaly_outputs(torch.zeros(1, 3, 64, 64))
