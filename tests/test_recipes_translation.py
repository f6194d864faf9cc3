"""CycleGAN and pix2pix: image pool, schedule, losses and one training step on tiny networks."""

import functools
import itertools
import math

import pytest
import torch
from helpers import build_model
from torch import nn

from gantrain.losses import adversarial_loss
from gantrain.options import AdversarialLoss
from gantrain.recipes.base import constant_then_linear_decay
from gantrain.recipes.image_pool import ImagePool
from gantrain.step import Step

adam = functools.partial(torch.optim.Adam, lr=2e-4, betas=(0.5, 0.999))
SHAPE = (3, 32, 32)


def stepper(recipe):
    return Step(recipe.optimizers(), torch.amp.GradScaler("cpu", enabled=False))


def pairs(count=2):
    return {"A": torch.rand(count, *SHAPE) * 2 - 1, "B": torch.rand(count, *SHAPE) * 2 - 1}


def tiny_cyclegan(**kwargs):
    return build_model("cyclegan", SHAPE, adam, ngf=4, ndf=4, n_blocks=1, **kwargs)


def tiny_pix2pix(**kwargs):
    return build_model("pix2pix", SHAPE, adam, ngf=4, ndf=4, generator="unet_32", **kwargs)


def test_image_pool_fills_then_swaps_half_the_time():
    torch.manual_seed(0)
    pool = ImagePool(size=4)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool(first), first)  # filling: the new images come back
    fakes = torch.arange(4.0, 404.0).view(400, 1, 1, 1)
    returned = pool(fakes)
    from_history = returned != fakes
    assert 150 < from_history.sum().item() < 250  # about half
    assert (returned[from_history] < fakes[from_history]).all()  # an older fake each time
    assert len(pool.images) == 4


def test_image_pool_state_round_trips_and_size_zero_passes_through():
    pool = ImagePool(size=3)
    pool(torch.randn(2, 3, 4, 4))
    restored = ImagePool(size=3)
    restored.load_state_dict(pool.state_dict())
    assert len(restored.images) == 2 and torch.equal(restored.images[1], pool.images[1])
    images = torch.randn(5, 3, 4, 4)
    assert torch.equal(ImagePool(size=0)(images), images)


def test_image_pool_follows_the_fakes_to_their_device_after_a_resume():
    """A checkpoint loads on the CPU; a run resumed on a GPU then stores its fakes there (meta stands in)."""
    pool = ImagePool(size=2)
    pool(torch.randn(2, 3, 4, 4))
    resumed = ImagePool(size=2)
    resumed.load_state_dict(pool.state_dict())
    resumed(torch.randn(1, 3, 4, 4, device="meta"))  # one fake replaces at most one stored image
    # all on one device, or saving the next checkpoint fails to stack them (seen on an H100)
    assert [image.device.type for image in resumed.images] == ["meta", "meta"]


def test_constant_then_linear_decay_matches_the_reference_schedule():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = constant_then_linear_decay(optimizer, constant_epochs=100, decay_epochs=100)
    rates = []
    for _ in range(200):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[:100] == [1.0] * 100
    assert rates[100] == pytest.approx(1 - 1 / 101)
    assert rates[199] == pytest.approx(1 / 101)
    assert all(a > b for a, b in itertools.pairwise(rates[99:]))


def test_adversarial_losses_on_known_scores():
    ones, zeros = torch.ones(2, 1, 3, 3), torch.zeros(2, 1, 3, 3)
    assert adversarial_loss(ones, True, AdversarialLoss.lsgan).item() == 0.0
    assert adversarial_loss(zeros, True, AdversarialLoss.lsgan).item() == 1.0
    assert adversarial_loss(ones, False, AdversarialLoss.lsgan).item() == 1.0
    assert adversarial_loss(zeros, True, AdversarialLoss.vanilla).item() == pytest.approx(math.log(2))
    assert adversarial_loss(ones * 3, True, AdversarialLoss.wgangp).item() == -3.0
    assert adversarial_loss(ones * 3, False, AdversarialLoss.wgangp).item() == 3.0


def test_cyclegan_step_updates_all_four_networks_and_reports_each_term():
    torch.manual_seed(0)
    recipe = tiny_cyclegan()
    before = {name: [p.detach().clone() for p in module.parameters()] for name, module in recipe.named_children()}
    metrics = recipe.train_step(pairs(), stepper(recipe))
    for name in ("generator_ab", "generator_ba", "discriminator_a", "discriminator_b"):
        after = list(getattr(recipe, name).parameters())
        assert any(not torch.equal(a, b) for a, b in zip(before[name], after)), name
    assert {"loss/generator", "loss/discriminator", "loss/cycle_a", "loss/cycle_b", "loss/identity_a",
            "loss/identity_b", "loss/generator_adversarial", "loss/discriminator_a"} <= metrics.keys()
    assert len(recipe.pool_a.images) == 2 and len(recipe.pool_b.images) == 2


def test_cyclegan_identity_weight_zero_drops_the_identity_terms():
    metrics = tiny_cyclegan(lambda_identity=0.0).train_step(pairs(), stepper(tiny_cyclegan()))
    assert "loss/identity_a" not in metrics


def test_cyclegan_wgangp_really_applies_the_penalty():
    """The weighted penalty is logged beside the discriminators' loss and changes their update."""
    batch = pairs()
    penalties, weights = {}, {}
    for weight in (0.0, 10.0):
        torch.manual_seed(0)
        recipe = tiny_cyclegan(gan_loss="wgangp", lambda_gp=weight)
        penalties[weight] = recipe.train_step(batch, stepper(recipe))["critic/gradient_penalty"]
        weights[weight] = [p.detach().clone() for p in recipe.discriminator_a.parameters()]
    assert penalties[10.0] > penalties[0.0] == 0.0
    assert any(not torch.equal(a, b) for a, b in zip(weights[0.0], weights[10.0]))


def test_cyclegan_visuals_are_rows_of_four():
    recipe = tiny_cyclegan().eval()
    with torch.no_grad():
        visuals = recipe.visuals(pairs(3))
    assert visuals["A_to_B"].shape == (3, 4, *SHAPE) and visuals["B_to_A"].shape == (3, 4, *SHAPE)
    assert torch.equal(visuals["A_to_B"][:, 0], pairs(3)["A"]) is False  # different random batch
    batch = pairs(3)
    with torch.no_grad():
        assert torch.equal(recipe.visuals(batch)["A_to_B"][:, 0], batch["A"])


def test_pix2pix_conditions_the_discriminator_on_the_input_and_keeps_dropout_at_inference():
    recipe = build_model("pix2pix", (3, 64, 64), adam, ngf=4, ndf=4, generator="unet_64")  # one dropout block
    assert recipe.discriminator(torch.zeros(1, 6, 64, 64)).dim() == 4  # input | output pair
    recipe.eval()
    dropouts = [m for m in recipe.generator.modules() if isinstance(m, nn.Dropout)]
    assert dropouts and all(m.training for m in dropouts)
    assert not any(m.training for m in recipe.generator.modules() if isinstance(m, nn.BatchNorm2d))


def test_pix2pix_step_and_direction():
    torch.manual_seed(0)
    recipe = tiny_pix2pix()
    metrics = recipe.train_step(pairs(), stepper(recipe))
    assert {"loss/discriminator", "loss/generator", "loss/l1", "loss/generator_adversarial"} <= metrics.keys()
    batch = pairs()
    assert recipe.pair(batch)[0] is batch["A"]
    assert tiny_pix2pix(direction="BtoA").pair(batch)[0] is batch["B"]
    with torch.no_grad():
        assert recipe.visuals(batch)["translation"].shape == (2, 3, *SHAPE)
