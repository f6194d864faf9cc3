"""SNGAN (Miyato et al. 2018): spectral normalisation in the discriminator, with the hinge loss.

Every weight of D is divided by its largest singular value, which keeps D 1-Lipschitz
without WGAN's clipping or WGAN-GP's penalty (and without its second backward pass).
The discriminator minimises E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))], the generator
-E[D(G(z))].  As in WGAN, one trainer step is one discriminator step on a fresh batch and
the generator steps after every ``n_critic``-th; the counter is part of the recipe's state,
so a resumed run keeps the schedule.  Networks: the DCGAN generator and a spectrally
normalised DCGAN discriminator without BatchNorm, at 32, 64 or 128 pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from gantrain.losses import adversarial_loss
from gantrain.nets.sngan import sngan_networks
from gantrain.options import AdversarialLoss
from gantrain.recipes.base import NoiseToImage, OptimizerFactory, frozen, positive_critic_steps
from gantrain.step import Step

HINGE = AdversarialLoss.hinge


class SNGAN(NoiseToImage):
    def __init__(
        self,
        image_shape: Sequence[int],
        make_optimizer: OptimizerFactory,
        *,
        nz: int,
        ngf: int,
        ndf: int,
        n_critic: int,
        ema_decay: float,
    ):
        generator, discriminator = sngan_networks(image_shape, nz, ngf, ndf)
        super().__init__(image_shape, make_optimizer, generator, discriminator, nz, ema_decay)
        self.n_critic = positive_critic_steps(n_critic)
        self.critic_steps_since_generator = 0

    def plan_step(self, batch_size: int) -> bool:
        """Whether the generator steps after this discriminator step; advances the counter."""
        self.critic_steps_since_generator += 1
        generator_steps = self.critic_steps_since_generator >= self.n_critic
        if generator_steps:
            self.critic_steps_since_generator = 0
        return generator_steps

    def run_step(self, batch: list[torch.Tensor], step: Step, plan: bool) -> dict[str, torch.Tensor]:
        real = batch[0]  # (images, labels)
        with torch.no_grad():
            fake = self.generator(self.noise(real.size(0), real.device))
        real_scores, fake_scores = self.discriminator(real), self.discriminator(fake)
        d_loss = adversarial_loss(real_scores, True, HINGE) + adversarial_loss(fake_scores, False, HINGE)
        step("discriminator", d_loss)
        metrics = {
            "loss/discriminator": d_loss.detach(),
            "critic/f(x)": real_scores.detach().float().mean(),
            "critic/f(G(z))": fake_scores.detach().float().mean(),
        }
        if plan:
            with frozen(self.discriminator):
                fake_scores = self.discriminator(self.generator(self.noise(real.size(0), real.device)))
                g_loss = adversarial_loss(fake_scores, True, HINGE, generator=True)
            step("generator", g_loss)
            self.update_ema()
            metrics["loss/generator"] = g_loss.detach()
        return metrics

    def get_extra_state(self) -> dict[str, int]:
        return {"critic_steps_since_generator": self.critic_steps_since_generator}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.critic_steps_since_generator = int(state["critic_steps_since_generator"])
