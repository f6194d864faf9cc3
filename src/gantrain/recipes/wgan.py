"""WGAN (Arjovsky et al. 2017): a critic trained to estimate the Wasserstein distance.

One trainer step is one critic step on a fresh batch; the generator steps once the
critic has taken ``n_critic`` steps (or the reference's 100 during warm-up).  The
step counters are part of the recipe's state, so a resumed run keeps the schedule.
With ``n_steps_decay`` > 0 (not in the paper, which keeps the rate constant) both rates
fall linearly to zero over that many trainer steps after the first ``n_steps``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch

from gantrain.losses import clip_weights, wasserstein_critic_loss, wasserstein_generator_loss
from gantrain.nets.dcgan import dcgan_networks
from gantrain.options import Norm
from gantrain.recipes.base import NoiseToImage, OptimizerFactory, frozen, positive_critic_steps
from gantrain.step import Step


class WGAN(NoiseToImage):
    schedule_per_step: ClassVar[bool] = True
    schedule_settings: ClassVar[tuple[str, ...]] = ("n_steps", "n_steps_decay")

    def __init__(
        self,
        image_shape: Sequence[int],
        make_optimizer: OptimizerFactory,
        *,
        nz: int,
        ngf: int,
        ndf: int,
        critic_norm: Norm,
        n_critic: int,
        long_critic_iterations: int,
        warmup_generator_steps: int,
        long_critic_every: int,
        clip_value: float,
        n_steps: int,
        n_steps_decay: int,
        ema_decay: float,
    ):
        generator, critic = dcgan_networks(image_shape, nz, ngf, ndf, critic_norm)
        super().__init__(image_shape, make_optimizer, generator, critic, nz, ema_decay)
        self.n_critic = positive_critic_steps(n_critic)
        self.long_critic_iterations = long_critic_iterations
        self.warmup_generator_steps = warmup_generator_steps
        self.long_critic_every = long_critic_every
        self.clip_value = clip_value
        self.generator_steps = 0
        self.critic_steps_since_generator = 0
        if n_steps_decay:
            self.set_linear_decay(n_steps, n_steps_decay)

    def critic_iterations(self) -> int:
        """Critic steps before the next generator step (the reference's schedule)."""
        if self.long_critic_iterations and (
            self.generator_steps < self.warmup_generator_steps
            or (self.long_critic_every and self.generator_steps % self.long_critic_every == 0)
        ):
            return self.long_critic_iterations
        return self.n_critic

    def critic_penalty(self, real: torch.Tensor, fake: torch.Tensor, step: Step) -> dict[str, torch.Tensor]:
        """Extra critic loss terms, weighted; weight clipping needs none."""
        return {}

    def after_critic_step(self) -> None:
        clip_weights(self.discriminator, self.clip_value)

    def plan_step(self, batch_size: int) -> bool:
        """Whether the generator steps after this critic step; advances the schedule's counters."""
        self.critic_steps_since_generator += 1
        generator_steps = self.critic_steps_since_generator >= self.critic_iterations()
        if generator_steps:
            self.generator_steps += 1
            self.critic_steps_since_generator = 0
        return generator_steps

    def run_step(self, batch: list[torch.Tensor], step: Step, plan: bool) -> dict[str, torch.Tensor]:
        real = batch[0]  # (images, labels)
        with torch.no_grad():
            fake = self.generator(self.noise(real.size(0), real.device))
        real_scores = self.discriminator(real)
        fake_scores = self.discriminator(fake)
        critic_loss = wasserstein_critic_loss(real_scores, fake_scores)
        penalties = self.critic_penalty(real, fake, step)
        step("discriminator", critic_loss + sum(penalties.values()))
        self.after_critic_step()

        metrics = {
            "loss/discriminator": critic_loss.detach(),
            "critic/wasserstein_estimate": -critic_loss.detach(),
            "critic/f(x)": real_scores.detach().float().mean(),
            "critic/f(G(z))": fake_scores.detach().float().mean(),
            **{f"critic/{name}": value.detach() for name, value in penalties.items()},
        }
        if plan:
            with frozen(self.discriminator):
                fake_scores = self.discriminator(self.generator(self.noise(real.size(0), real.device)))
                generator_loss = wasserstein_generator_loss(fake_scores)
            step("generator", generator_loss)
            self.update_ema()
            metrics["loss/generator"] = generator_loss.detach()
        return metrics

    def get_extra_state(self) -> dict[str, int]:
        return {
            "generator_steps": self.generator_steps,
            "critic_steps_since_generator": self.critic_steps_since_generator,
        }

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.generator_steps = int(state["generator_steps"])
        self.critic_steps_since_generator = int(state["critic_steps_since_generator"])
