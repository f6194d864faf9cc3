"""Losses and critic regularisers on inputs whose answer is known."""

import math

import pytest
import torch
from torch import nn

from gantrain.losses import (
    bce_discriminator_loss,
    bce_generator_loss,
    classification_loss,
    clip_weights,
    gradient_penalty,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)
from gantrain.options import GeneratorLoss


class LinearCritic(nn.Module):
    """f(x) = <w, x>: its gradient is w for every input."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight)

    def forward(self, x):
        return (x * self.weight).flatten(1).sum(1)


class HalfSquaredNorm(nn.Module):
    """f(x) = ||x||^2 / 2: its gradient at x is x itself."""

    def forward(self, x):
        return 0.5 * x.flatten(1).pow(2).sum(1)


def test_bce_losses_at_an_undecided_discriminator():
    zeros = torch.zeros(8)
    assert bce_discriminator_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2))
    assert bce_generator_loss(zeros, GeneratorLoss.non_saturating).item() == pytest.approx(math.log(2))
    assert bce_generator_loss(zeros, GeneratorLoss.minimax).item() == pytest.approx(-math.log(2))


def test_one_sided_label_smoothing_asks_d_for_the_smoothed_probability_on_real_images_only():
    real, fake = torch.tensor([2.0]), torch.tensor([-1.0])
    p_real, p_fake = torch.sigmoid(real).item(), torch.sigmoid(fake).item()
    expected = -(0.9 * math.log(p_real) + 0.1 * math.log(1 - p_real)) - math.log(1 - p_fake)
    assert bce_discriminator_loss(real, fake, real_label=0.9).item() == pytest.approx(expected, rel=1e-6)
    # its minimum over the real logit sits at D(x) = 0.9, not at D(x) -> 1
    logit = torch.tensor([0.0], requires_grad=True)
    optimizer = torch.optim.SGD([logit], lr=1.0)
    for _ in range(200):
        optimizer.zero_grad()
        bce_discriminator_loss(logit, fake, real_label=0.9).backward()
        optimizer.step()
    assert torch.sigmoid(logit).item() == pytest.approx(0.9, abs=1e-3)


def test_top_k_generator_loss_averages_over_the_fakes_d_scores_highest():
    logits = torch.tensor([-3.0, 2.0, 0.0, 5.0], requires_grad=True)
    loss = bce_generator_loss(logits, GeneratorLoss.non_saturating, top_k=2)
    expected = (math.log1p(math.exp(-5.0)) + math.log1p(math.exp(-2.0))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert logits.grad[0] == 0 and logits.grad[2] == 0  # the two least convincing fakes get no gradient
    assert logits.grad[1] < 0 and logits.grad[3] < 0


def test_minimax_generator_gradient_vanishes_where_non_saturating_does_not():
    """When D confidently rejects the fakes (logit -10), log(1 - D) has almost no slope."""
    gradients = {}
    for kind in GeneratorLoss:
        logits = torch.full((1,), -10.0, requires_grad=True)
        bce_generator_loss(logits, kind).backward()
        gradients[kind] = logits.grad.abs().item()
    assert gradients[GeneratorLoss.minimax] < 1e-4
    assert gradients[GeneratorLoss.non_saturating] > 0.99


def test_wasserstein_losses():
    real, fake = torch.tensor([2.0, 4.0]), torch.tensor([1.0, -1.0])
    assert wasserstein_critic_loss(real, fake).item() == pytest.approx(0.0 - 3.0)
    assert wasserstein_generator_loss(fake).item() == pytest.approx(0.0)


def test_gradient_penalty_of_a_linear_critic_uses_the_norm_over_all_dimensions():
    weight = torch.full((3, 4, 4), 0.5)  # ||w|| over all 48 entries = 0.5 * sqrt(48)
    critic = LinearCritic(weight)
    real, fake = torch.randn(6, 3, 4, 4), torch.randn(6, 3, 4, 4)
    expected = (0.5 * math.sqrt(48) - 1) ** 2
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(expected, rel=1e-5)


def test_gradient_penalty_interpolates_per_sample():
    """With f = ||x||^2/2 the gradient norm is ||x_hat||, so the interpolation point shows through."""
    real = torch.zeros(2, 1, 2, 2)
    fake = torch.ones(2, 1, 2, 2)  # ||fake|| = 2
    alpha = torch.tensor([0.25, 1.0]).view(2, 1, 1, 1)
    penalty = gradient_penalty(HalfSquaredNorm(), real, fake, alpha=alpha)
    assert penalty.item() == pytest.approx(((0.5 - 1) ** 2 + (2.0 - 1) ** 2) / 2)


def test_gradient_penalty_is_differentiable_with_respect_to_the_critic():
    critic = LinearCritic(torch.full((1, 2, 2), 1.0))  # ||w|| = 2
    gradient_penalty(critic, torch.randn(3, 1, 2, 2), torch.randn(3, 1, 2, 2)).backward()
    # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w|| = w here
    assert torch.allclose(critic.weight.grad, torch.ones(1, 2, 2))


def test_clip_weights_clamps_only_what_is_outside():
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -0.5, 0.005], [-0.02, 0.0, 0.01]]))
        layer.bias.copy_(torch.tensor([0.003, -3.0]))
    clip_weights(layer, 0.01)
    assert torch.equal(layer.weight, torch.tensor([[0.01, -0.01, 0.005], [-0.01, 0.0, 0.01]]))
    assert torch.equal(layer.bias, torch.tensor([0.003, -0.01]))


def test_classification_losses_on_known_logits():
    labels = torch.tensor([[1.0, 0, 0, 1, 0, 0], [0, 1, 0, 0, 1, 0], [0, 0, 1, 0, 0, 1], [1, 0, 0, 0, 0, 1]])
    # zero logits: log 2 per attribute, summed over the six and averaged over images
    assert classification_loss(torch.zeros(4, 6), labels, multi_label=True).item() == pytest.approx(
        6 * torch.log(torch.tensor(2.0))
    )
    assert classification_loss(torch.zeros(4, 3), torch.tensor([0, 1, 2, 0]), multi_label=False).item() == pytest.approx(
        torch.log(torch.tensor(3.0))
    )
    confident = torch.tensor([[20.0, -20, -20]])
    assert classification_loss(confident, torch.tensor([0]), multi_label=False).item() < 1e-6
