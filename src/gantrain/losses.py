"""Adversarial losses and critic regularisers, as small pure functions.

Everything takes raw scores (logits), so the binary cross-entropy goes through
``binary_cross_entropy_with_logits``, the form that is stable and allowed under autocast.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from gantrain.options import AdversarialLoss, GeneratorLoss


def bce_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, real_label: float = 1.0) -> torch.Tensor:
    """-[log D(x) + log(1 - D(G(z)))], averaged: the discriminator's side of the minimax game.

    ``real_label`` < 1 is one-sided label smoothing (Salimans et al. 2016: 0.9): D is asked for
    that probability on real images, so it cannot grow arbitrarily confident on them.
    """
    real = F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, real_label))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def bce_generator_loss(fake_logits: torch.Tensor, kind: GeneratorLoss, top_k: int | None = None) -> torch.Tensor:
    """The generator's objective on D's logits for its samples.

    ``non_saturating`` minimises -log D(G(z)); ``minimax`` minimises log(1 - D(G(z))),
    whose gradient vanishes while D confidently rejects the samples (early training).
    ``top_k``: only the k samples D finds most real count (Sinha et al. 2020, top-k training).
    """
    if top_k is not None:
        fake_logits = torch.topk(fake_logits.flatten(), top_k).values
    if kind == GeneratorLoss.minimax:
        return -F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def adversarial_loss(
    scores: torch.Tensor, real: bool, kind: AdversarialLoss, generator: bool = False
) -> torch.Tensor:
    """How far ``scores`` are from saying "real" (``real=True``) or "fake", for patch or image scores.

    Both players use it: the discriminator with the true labels, the generator with
    ``real=True`` and ``generator=True`` on its fakes.  ``vanilla`` is the non-saturating
    binary cross-entropy on logits, ``lsgan`` least squares, ``wgangp`` the Wasserstein form
    (-E[f] for real, E[f] for fake; its penalty is added separately by the caller), ``hinge``
    (Lim & Ye 2017; SNGAN, Miyato et al. 2018) E[max(0, 1 - f)] for real and E[max(0, 1 + f)]
    for fake on the discriminator's side, -E[f] on the generator's.
    """
    kind = AdversarialLoss(kind)
    if kind == AdversarialLoss.wgangp or (kind == AdversarialLoss.hinge and generator):
        return -scores.mean() if real else scores.mean()
    if kind == AdversarialLoss.hinge:
        return F.relu(1.0 - scores).mean() if real else F.relu(1.0 + scores).mean()
    target = torch.full_like(scores, 1.0 if real else 0.0)
    if kind == AdversarialLoss.lsgan:
        return F.mse_loss(scores, target)
    return F.binary_cross_entropy_with_logits(scores, target)


def halved_discriminator_loss(
    discriminator: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor, kind: AdversarialLoss
) -> torch.Tensor:
    """pix2pix's and CycleGAN's discriminator loss: half the sum of the real and the fake terms, which
    slows D down relative to G (a ``wgangp`` penalty is added separately)."""
    return 0.5 * (
        adversarial_loss(discriminator(real), True, kind) + adversarial_loss(discriminator(fake), False, kind)
    )


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, multi_label: bool) -> torch.Tensor:
    """StarGAN's domain classification: BCE summed over attributes and averaged over images for
    multi-hot labels, cross-entropy over domains for one domain per image."""
    if multi_label:
        return F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="sum") / logits.size(0)
    return F.cross_entropy(logits, labels.long())


def wasserstein_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """E[f(G(z))] - E[f(x)]: minimising it maximises the critic's Wasserstein estimate."""
    return fake_scores.mean() - real_scores.mean()


def wasserstein_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    return -fake_scores.mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    alpha: torch.Tensor | None = None,
    scale: torch.Tensor | float = 1.0,
) -> torch.Tensor:
    """E[(||grad f(x_hat)||_2 - 1)^2] at x_hat = x + alpha (G(z) - x) (Gulrajani et al. 2017).

    ``alpha`` is drawn from U(0, 1) once per sample unless given.  The norm runs
    over every non-batch dimension, and is taken in fp32 so that it stays exact
    under autocast.  Under fp16, ``scale`` is the loss scale (``Step.loss_scale``):
    the input gradient is taken of the scaled scores and divided back in fp32.
    The result is unweighted: multiply by lambda (10).
    """
    if alpha is None:
        alpha = torch.rand(real.size(0), *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    interpolates = (real.detach() + alpha * (fake.detach() - real.detach())).requires_grad_(True)
    scores = critic(interpolates)
    (gradients,) = torch.autograd.grad(scores.sum() * scale, interpolates, create_graph=True)
    norms = (gradients.float() / scale).flatten(1).norm(2, dim=1)
    return ((norms - 1.0) ** 2).mean()


def r1_penalty(real_scores: torch.Tensor, real: torch.Tensor, scale: torch.Tensor | float = 1.0) -> torch.Tensor:
    """0.5 E[||grad D(x)||^2] on real images (Mescheder et al. 2018), unweighted.

    ``real`` must have had ``requires_grad_()`` set before D scored it.  The squared
    norm is summed in fp32 so that it stays exact under autocast; ``scale`` as in
    :func:`gradient_penalty`.
    """
    (gradients,) = torch.autograd.grad(real_scores.sum() * scale, real, create_graph=True)
    return 0.5 * (gradients.float() / scale).pow(2).flatten(1).sum(1).mean()


@torch.no_grad()
def clip_weights(module: nn.Module, clip_value: float) -> None:
    """Clamp every parameter to [-c, c]: WGAN's crude way to keep the critic Lipschitz."""
    for parameter in module.parameters():
        parameter.clamp_(-clip_value, clip_value)
