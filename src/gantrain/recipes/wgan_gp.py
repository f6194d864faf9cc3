"""WGAN-GP (Gulrajani et al. 2017): the Wasserstein critic kept Lipschitz by a gradient penalty."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gantrain.errors import ConfigError
from gantrain.losses import gradient_penalty
from gantrain.options import Norm
from gantrain.recipes.base import OptimizerFactory
from gantrain.recipes.wgan import WGAN
from gantrain.step import Step


class WGANGP(WGAN):
    """WGAN without clipping or the long critic warm-up; lambda_gp * penalty added to the critic loss."""

    schedule_settings = ()

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
        lambda_gp: float,
        ema_decay: float,
    ):
        if Norm(critic_norm) == Norm.batch:
            raise ConfigError(
                "WGAN-GP penalises each sample's gradient, which BatchNorm couples across the batch: "
                "set model.critic_norm=layer (the paper's choice) or model.critic_norm=none."
            )
        super().__init__(
            image_shape, make_optimizer, nz=nz, ngf=ngf, ndf=ndf, critic_norm=critic_norm, n_critic=n_critic,
            long_critic_iterations=0, warmup_generator_steps=0, long_critic_every=0, clip_value=0.0,
            n_steps=0, n_steps_decay=0, ema_decay=ema_decay,
        )
        self.lambda_gp = lambda_gp

    def critic_penalty(self, real: torch.Tensor, fake: torch.Tensor, step: Step) -> dict[str, torch.Tensor]:
        penalty = gradient_penalty(self.discriminator, real, fake, scale=step.loss_scale(real.device))
        return {"gradient_penalty": self.lambda_gp * penalty}

    def after_critic_step(self) -> None:
        """No clipping: the penalty does its job."""

    def compilable_networks(self) -> list[nn.Module]:
        return [self.generator]  # the critic is differentiated twice by the penalty
