"""StarGAN and StarGAN v2 training steps: update order, losses on known inputs, schedules, EMA."""

from __future__ import annotations

import copy
from functools import partial

import pytest
import torch
from helpers import build_model
from torch import nn

from gantrain.errors import ConfigError
from gantrain.losses import r1_penalty
from gantrain.recipes.stargan import StarGAN
from gantrain.recipes.stargan_v2 import StarGANv2
from gantrain.step import Step

ATTRIBUTES = {
    "names": ["red", "green", "blue", "circle", "square", "triangle"],
    "groups": [["red", "green", "blue"], ["circle", "square", "triangle"]],
    "multi_label": True,
}
DOMAINS = {"names": ["cat", "dog", "wild"], "groups": [], "multi_label": False}
ADAM = partial(torch.optim.Adam, lr=1e-4, betas=(0.5, 0.999))
ADAM_V2 = partial(torch.optim.Adam, lr=1e-4, betas=(0.0, 0.99), weight_decay=1e-4)


def stargan(**overrides) -> StarGAN:
    settings = {"ngf": 8, "ndf": 8, "n_blocks": 1, "n_layers_d": 3, "n_critic": 2, "labels": ATTRIBUTES}
    return build_model("stargan", (3, 16, 16), ADAM, **(settings | overrides))


def stargan_v2(**overrides) -> StarGANv2:
    settings = {
        "latent_dim": 4,
        "style_dim": 8,
        "mapping_width": 16,
        "base_width": 8,
        "max_width": 16,
        "labels": DOMAINS,
    }
    return build_model("stargan_v2", (3, 32, 32), ADAM_V2, **(settings | overrides))


def step_for(recipe) -> Step:
    return Step(recipe.optimizers(), torch.amp.GradScaler("cpu", enabled=False))


def attribute_batch(count: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    colours, shapes = torch.arange(count) % 3, (torch.arange(count) + 1) % 3
    labels = torch.cat([nn.functional.one_hot(colours, 3), nn.functional.one_hot(shapes, 3)], 1).float()
    return torch.rand(count, 3, 16, 16) * 2 - 1, labels


def domain_batch(count: int = 4) -> dict[str, torch.Tensor]:
    return {
        "image": torch.rand(count, 3, 32, 32) * 2 - 1,
        "label": torch.arange(count) % 3,
        "reference": torch.rand(count, 3, 32, 32) * 2 - 1,
        "reference_2": torch.rand(count, 3, 32, 32) * 2 - 1,
        "reference_label": (torch.arange(count) + 1) % 3,
    }


def snapshot(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def changed(module: nn.Module, before: list[torch.Tensor]) -> bool:
    return any(not torch.equal(p, b) for p, b in zip(module.parameters(), before))


def test_stargan_updates_the_generator_every_n_critic_steps():
    torch.manual_seed(0)
    recipe = stargan(n_critic=2)
    step, batch = step_for(recipe), attribute_batch()
    generator, discriminator = snapshot(recipe.generator), snapshot(recipe.discriminator)
    first = recipe.train_step(batch, step)
    assert "loss/generator" not in first and not changed(recipe.generator, generator)
    assert changed(recipe.discriminator, discriminator)
    second = recipe.train_step(batch, step)
    assert {"loss/generator", "loss/generator_classification", "loss/reconstruction"} <= second.keys()
    assert changed(recipe.generator, generator)
    # the counter is state: a reloaded recipe continues the schedule
    reloaded = stargan(n_critic=2)
    recipe.train_step(batch, step)
    reloaded.load_state_dict(recipe.state_dict())
    assert "loss/generator" in reloaded.train_step(batch, step_for(reloaded))


def test_stargan_identity_loss_is_optional_and_measures_the_unchanged_translation():
    torch.manual_seed(0)
    batch = attribute_batch()
    paper = stargan(n_critic=1)
    assert "loss/identity" not in paper.train_step(batch, step_for(paper))
    recipe = stargan(n_critic=1, lambda_identity=1.0)
    with torch.no_grad():
        expected = nn.functional.l1_loss(recipe.generator(batch[0], recipe.labels.condition(batch[1])), batch[0])
    # the generator's batch statistics are the same in this forward pass and in the step's
    assert recipe.train_step(batch, step_for(recipe))["loss/identity"] == pytest.approx(expected.item(), rel=1e-5)


def test_stargan_averaged_generator_follows_generator_updates_and_translates():
    torch.manual_seed(0)
    paper = stargan()
    assert paper.generator_ema is None and paper.translator is paper.generator
    assert not any(key.startswith("generator_ema") for key in paper.state_dict())

    recipe = stargan(n_critic=2, ema_decay=0.999)
    step, batch = step_for(recipe), attribute_batch()
    recipe.train_step(batch, step)  # a critic step only: nothing to average yet
    assert recipe.generator_ema.n_averaged.item() == 0
    before = snapshot(recipe.generator)
    recipe.train_step(batch, step)
    assert recipe.generator_ema.n_averaged.item() == 1
    # the first average is the updated generator itself; the second lerps with weight min(0.999, 2/11)
    average = snapshot(recipe.generator_ema.module)
    assert all(torch.equal(a, g) for a, g in zip(average, snapshot(recipe.generator)))
    assert not all(torch.equal(a, b) for a, b in zip(average, before))
    recipe.train_step(batch, step)
    recipe.train_step(batch, step)
    weight = 2.0 / 11.0
    expected = [torch.lerp(g, a, weight) for a, g in zip(average, snapshot(recipe.generator))]
    assert all(torch.allclose(e, p) for e, p in zip(expected, snapshot(recipe.generator_ema.module)))

    recipe.eval()
    images, labels = batch
    condition = recipe.labels.condition(recipe.labels.one_change_targets(labels)[0])
    with torch.no_grad():
        averaged = recipe.generator_ema(images, condition)
        assert not torch.allclose(averaged, recipe.generator(images, condition))
        assert torch.equal(recipe.visuals(batch)["translations"][:, 1], averaged)
    reloaded = stargan(n_critic=2, ema_decay=0.999)
    reloaded.load_state_dict(recipe.state_dict())
    assert reloaded.generator_ema.n_averaged.item() == 2


def test_stargan_learning_rate_falls_linearly_over_the_last_steps():
    recipe = stargan(n_steps=3, n_steps_decay=4)
    scheduler, optimizer = recipe.schedulers()["generator"], recipe.optimizers()["generator"]
    rates = []
    for _ in range(7):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([1e-4, 1e-4, 1e-4, 0.8e-4, 0.6e-4, 0.4e-4, 0.2e-4])
    assert recipe.schedule_per_step


def test_stargan_visuals_have_one_column_per_label_after_the_input():
    recipe = stargan().eval()
    images, labels = attribute_batch(2)
    grid = recipe.visuals((images, labels))["translations"]
    assert grid.shape == (2, 7, 3, 16, 16)
    assert torch.equal(grid[:, 0], images)


def test_r1_penalty_of_a_linear_critic():
    weight = torch.randn(3, 4, 4)
    real = torch.randn(5, 3, 4, 4).requires_grad_(True)
    scores = (real * weight).flatten(1).sum(1)
    assert r1_penalty(scores, real).item() == pytest.approx(0.5 * weight.pow(2).sum().item(), rel=1e-5)


def test_stargan_v2_refuses_attribute_labels():
    with pytest.raises(ConfigError, match="shapes_domains"):
        stargan_v2(labels=ATTRIBUTES)


def test_stargan_v2_step_updates_every_network_and_the_averages():
    torch.manual_seed(0)
    recipe = stargan_v2(ema_decay=0.5)
    networks = {
        name: (getattr(recipe, name), snapshot(getattr(recipe, name)))
        for name in ("generator", "mapping", "style_encoder", "discriminator")
    }
    metrics = recipe.train_step(domain_batch(), step_for(recipe))
    for name, (network, before) in networks.items():
        assert changed(network, before), name
    assert {
        "loss/generator",
        "loss/discriminator",
        "generator_latent/diversity",
        "discriminator_latent/r1",
    } <= metrics.keys()
    assert recipe.optimizers()["mapping"].param_groups[0]["lr"] == 1e-6
    assert recipe.optimizers()["generator"].param_groups[0]["weight_decay"] == 1e-4

    # the first update copies the weights; later ones move the average by (1 - decay) of the gap
    for average, network in ((recipe.generator_ema, recipe.generator), (recipe.mapping_ema, recipe.mapping)):
        assert all(torch.equal(a, p) for a, p in zip(average.module.parameters(), network.parameters()))
    previous = snapshot(recipe.generator_ema.module)
    recipe.train_step(domain_batch(), step_for(recipe))
    for averaged, old, current in zip(
        recipe.generator_ema.module.parameters(), previous, recipe.generator.parameters()
    ):
        torch.testing.assert_close(averaged, 0.5 * old + 0.5 * current)


def test_stargan_v2_diversity_weight_decays_to_zero_and_is_saved():
    recipe = stargan_v2(lambda_diversity=2.0, diversity_decay_steps=4)
    assert recipe.diversity_weight == 2.0
    recipe.train_step(domain_batch(), step_for(recipe))
    assert recipe.diversity_weight == pytest.approx(1.5)
    reloaded = stargan_v2(lambda_diversity=2.0, diversity_decay_steps=4)
    reloaded.load_state_dict(copy.deepcopy(recipe.state_dict()))
    assert reloaded.diversity_weight == pytest.approx(1.5)
    reloaded.iterations = 10
    assert reloaded.diversity_weight == 0.0


def test_stargan_v2_visuals_and_named_translation():
    torch.manual_seed(0)
    recipe = stargan_v2().eval()
    batch = domain_batch(3)
    visuals = recipe.visuals(batch)
    assert visuals["latent_guided"].shape == (3, 4, 3, 32, 32)  # input + one column per domain
    assert visuals["reference_guided"].shape == (4, 4, 3, 32, 32)  # header of references + one row per input
    assert torch.equal(visuals["reference_guided"][0, 1:], batch["reference"])
    with torch.no_grad():
        assert recipe.translate_named(batch["image"], ["dog"], num_styles=5).shape == (3, 5, 3, 32, 32)
        assert recipe.translate_named(batch["image"], ["dog"], references=batch["reference"][:2]).shape == (
            3,
            2,
            3,
            32,
            32,
        )
