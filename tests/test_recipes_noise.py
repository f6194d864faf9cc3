"""Each recipe's update order and schedule, on tiny networks."""

import functools

import pytest
import torch
from helpers import build_model

from gantrain.errors import ConfigError
from gantrain.options import GeneratorLoss, Norm
from gantrain.step import Step

SHAPE = (3, 32, 32)
adam = functools.partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999))
rmsprop = functools.partial(torch.optim.RMSprop, lr=5e-5)


def stepper(recipe):
    return Step(recipe.optimizers(), torch.amp.GradScaler("cpu", enabled=False))


def snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def changed(before, module):
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


@pytest.mark.parametrize("build", [
    lambda: build_model("gan", SHAPE, adam, nz=8, g_hidden=[16], d_hidden=[16]),
    lambda: build_model("dcgan", SHAPE, adam, nz=8, ngf=4, ndf=4),
])
def test_gan_step_updates_both_players_and_reports_d_outputs(build):
    torch.manual_seed(0)
    recipe = build()
    generator, discriminator = snapshot(recipe.generator), snapshot(recipe.discriminator)
    metrics = recipe.train_step([torch.rand(4, *SHAPE) * 2 - 1], stepper(recipe))
    assert changed(generator, recipe.generator) and changed(discriminator, recipe.discriminator)
    assert {"loss/generator", "loss/discriminator", "discriminator/D(x)", "discriminator/D(G(z))",
            "discriminator/accuracy_real", "discriminator/accuracy_fake"} <= metrics.keys()
    assert all(not v.requires_grad for v in metrics.values())
    assert 0 <= metrics["discriminator/D(x)"] <= 1


def test_generator_step_leaves_no_gradient_in_the_discriminator():
    torch.manual_seed(0)
    recipe = build_model("dcgan", SHAPE, adam, nz=8, ngf=4, ndf=4)
    recipe.train_step([torch.zeros(4, *SHAPE)], stepper(recipe))
    assert all(p.grad is None for p in recipe.discriminator.parameters())


def test_minimax_option_reaches_the_loss():
    torch.manual_seed(0)
    recipe = build_model("dcgan", SHAPE, adam, nz=8, ngf=4, ndf=4, g_loss="minimax")
    assert recipe.g_loss == GeneratorLoss.minimax
    assert recipe.train_step([torch.zeros(4, *SHAPE)], stepper(recipe))["loss/generator"] < 0


def test_label_smoothing_and_top_k_settings_reach_the_mlp_gan_losses(monkeypatch):
    """model.d_real_label reaches D's loss and model.g_top_k the generator's, as a count of the batch."""
    from gantrain.recipes import gan

    seen = {}
    d_loss, g_loss = gan.bce_discriminator_loss, gan.bce_generator_loss

    def discriminator_loss(real, fake, real_label):
        seen["real_label"] = real_label
        return d_loss(real, fake, real_label)

    def generator_loss(logits, kind, top_k):
        seen["top_k"] = top_k
        return g_loss(logits, kind, top_k)

    monkeypatch.setattr(gan, "bce_discriminator_loss", discriminator_loss)
    monkeypatch.setattr(gan, "bce_generator_loss", generator_loss)
    torch.manual_seed(0)
    recipe = build_model("gan", SHAPE, adam, nz=8, g_hidden=[16], d_hidden=[16], d_real_label=0.9, g_top_k=0.5)
    recipe.train_step([torch.rand(8, *SHAPE) * 2 - 1], stepper(recipe))
    assert seen == {"real_label": 0.9, "top_k": 4}
    packed = build_model("gan", SHAPE, adam, nz=8, g_hidden=[16], d_hidden=[16], g_top_k=0.5, d_pack=2)
    metrics = packed.train_step([torch.rand(8, *SHAPE) * 2 - 1], stepper(packed))
    assert seen["top_k"] == 2  # half of the 4 packs of two
    assert torch.isfinite(metrics["loss/discriminator"])


def test_wgan_reference_critic_schedule():
    recipe = build_model("wgan", SHAPE, rmsprop, nz=8, ngf=4, ndf=4)
    expected = {0: 100, 24: 100, 25: 5, 499: 5, 500: 100, 501: 5, 1000: 100}
    for generator_steps, iterations in expected.items():
        recipe.generator_steps = generator_steps
        assert recipe.critic_iterations() == iterations


def test_wgan_generator_steps_every_n_critic_and_critic_stays_clipped():
    torch.manual_seed(0)
    recipe = build_model("wgan", SHAPE, rmsprop, nz=8, ngf=4, ndf=4, n_critic=3, long_critic_iterations=0, clip_value=0.01)
    step = stepper(recipe)
    updated = []
    for _ in range(9):
        generator = snapshot(recipe.generator)
        metrics = recipe.train_step([torch.rand(4, *SHAPE) * 2 - 1], step)
        updated.append(changed(generator, recipe.generator))
        assert ("loss/generator" in metrics) == updated[-1]
        assert all(p.abs().max() <= 0.01 for p in recipe.discriminator.parameters())
    assert updated == [False, False, True] * 3
    assert recipe.get_extra_state() == {"generator_steps": 3, "critic_steps_since_generator": 0}


def test_wgan_schedule_is_part_of_the_state_dict():
    recipe = build_model("wgan", SHAPE, rmsprop, nz=8, ngf=4, ndf=4)
    recipe.generator_steps, recipe.critic_steps_since_generator = 30, 2
    restored = build_model("wgan", SHAPE, rmsprop, nz=8, ngf=4, ndf=4)
    restored.load_state_dict(recipe.state_dict())
    assert (restored.generator_steps, restored.critic_steps_since_generator) == (30, 2)


@pytest.mark.parametrize("build", [
    functools.partial(build_model, "wgan", SHAPE, rmsprop, nz=8, ngf=4, ndf=4),
    functools.partial(build_model, "gan", SHAPE, rmsprop, nz=8, g_hidden=[16], d_hidden=[16]),
])
def test_rates_fall_linearly_to_zero_only_with_a_decay(build):
    assert build().schedulers() == {}  # the papers' constant rate
    recipe = build(n_steps=2, n_steps_decay=3)
    assert recipe.schedule_per_step and set(recipe.schedulers()) == {"generator", "discriminator"}
    rates = []
    for _ in range(6):
        rates.append({name: optimizer.param_groups[0]["lr"] for name, optimizer in recipe.optimizers().items()})
        for optimizer in recipe.optimizers().values():
            optimizer.step()
        for scheduler in recipe.schedulers().values():
            scheduler.step()
    assert [rate["generator"] for rate in rates] == pytest.approx([5e-5 * f for f in (1, 1, 0.75, 0.5, 0.25, 0)])
    assert [rate["discriminator"] for rate in rates] == [rate["generator"] for rate in rates]


def test_gan_networks_may_learn_at_their_own_rates():
    """The two time-scale rule: model.g_lr and model.d_lr replace the optimizer's rate for one network each."""
    build = functools.partial(build_model, "gan", SHAPE, adam, nz=8, g_hidden=[16], d_hidden=[16])
    rates = {name: opt.param_groups[0]["lr"] for name, opt in build(d_lr=4e-4).optimizers().items()}
    assert rates == {"generator": adam.keywords["lr"], "discriminator": 4e-4}
    recipe = build(g_lr=1e-4, d_lr=4e-4, n_steps=1, n_steps_decay=2)
    for scheduler in recipe.schedulers().values():
        scheduler.step()
        scheduler.step()
    rates = {name: opt.param_groups[0]["lr"] for name, opt in recipe.optimizers().items()}
    assert rates == pytest.approx({"generator": 1e-4 / 3, "discriminator": 4e-4 / 3})  # each decays from its own


def test_wgan_gp_adds_the_weighted_penalty_and_does_not_clip():
    torch.manual_seed(0)
    recipe = build_model("wgan_gp", SHAPE, adam, nz=8, ngf=4, ndf=4, n_critic=1, lambda_gp=10.0)
    with torch.no_grad():
        recipe.discriminator.net[0].weight.fill_(0.5)  # far outside WGAN's clipping range
    metrics = recipe.train_step([torch.rand(4, *SHAPE) * 2 - 1], stepper(recipe))
    assert metrics["critic/gradient_penalty"] > 0
    assert "loss/generator" in metrics  # n_critic=1 and no warm-up
    assert recipe.discriminator.net[0].weight.abs().max() > 0.01


def test_wgan_gp_refuses_batch_norm_in_the_critic():
    with pytest.raises(ConfigError, match="critic_norm=layer"):
        build_model("wgan_gp", SHAPE, adam, critic_norm=Norm.batch)


def test_fixed_noise_visuals_do_not_touch_the_global_rng():
    recipe = build_model("dcgan", SHAPE, adam, nz=8, ngf=4, ndf=4).eval()
    state = torch.get_rng_state()
    first = recipe.visuals([torch.zeros(6, *SHAPE)])["samples"]
    assert torch.equal(state, torch.get_rng_state())
    assert torch.equal(first, recipe.visuals([torch.zeros(6, *SHAPE)])["samples"])
    assert first.shape == (6, *SHAPE)


def test_ema_generator_averages_the_weights_and_draws_the_samples():
    torch.manual_seed(0)
    recipe = build_model("dcgan", SHAPE, adam, nz=8, ngf=4, ndf=4, ema_decay=0.9)
    step = stepper(recipe)
    weights = []
    for _ in range(2):
        recipe.train_step([torch.rand(4, *SHAPE) * 2 - 1], step)
        weights.append(recipe.generator.net[0].weight.detach().clone())
    averaged = recipe.generator_ema.module.net[0].weight
    # the first update copies; the second uses the warm-up decay min(0.9, (1 + 1) / (10 + 1))
    warm = 2 / 11
    assert torch.allclose(averaged, warm * weights[0] + (1 - warm) * weights[1])
    recipe.eval()
    noise = torch.Generator().manual_seed(0)
    expected = recipe.generator_ema(recipe.noise(3, torch.device("cpu"), torch.Generator().manual_seed(0)))
    assert torch.allclose(recipe.sample(3, noise), expected)
    assert "generator_ema.n_averaged" in recipe.state_dict()
