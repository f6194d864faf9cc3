"""The original GAN (Goodfellow et al. 2014): the binary cross-entropy game, with MLP networks.

:class:`BinaryGame` is the game itself (D step, then G step on the same fakes, as
pytorch/examples' dcgan trains), which DCGAN plays with convolutional networks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from gantrain.losses import bce_discriminator_loss, bce_generator_loss
from gantrain.nets.mlp import MLPDiscriminator, MLPGenerator
from gantrain.options import GeneratorLoss
from gantrain.recipes.base import NoiseToImage, OptimizerFactory, frozen
from gantrain.step import Step


class BinaryGame(NoiseToImage):
    """Discriminator step, then generator step on the same fakes, with binary cross-entropy on D's logits."""

    def __init__(
        self,
        image_shape: Sequence[int],
        make_optimizer: OptimizerFactory,
        generator: nn.Module,
        discriminator: nn.Module,
        nz: int,
        g_loss: GeneratorLoss,
        ema_decay: float,
        rates: dict[str, float | None] | None = None,
        real_label: float = 1.0,
        g_top_k: float = 1.0,
    ):
        """``real_label``: D's target on real images (< 1: one-sided label smoothing); ``g_top_k``: the share of
        each batch's fakes, those D scores highest, that the generator's loss averages over (< 1: top-k)."""
        super().__init__(image_shape, make_optimizer, generator, discriminator, nz, ema_decay, rates)
        self.g_loss = GeneratorLoss(g_loss)
        self.real_label, self.g_top_k = real_label, g_top_k

    def run_step(self, batch: list[torch.Tensor], step: Step, plan: None) -> dict[str, torch.Tensor]:
        real = batch[0]  # (images, labels)
        fake = self.generator(self.noise(real.size(0), real.device))

        real_logits = self.discriminator(real)
        fake_logits = self.discriminator(fake.detach())
        d_loss = bce_discriminator_loss(real_logits, fake_logits, self.real_label)
        step("discriminator", d_loss)

        with frozen(self.discriminator):
            scores = self.discriminator(fake)  # one per image, or per pack of images
            top_k = max(1, round(self.g_top_k * scores.numel())) if self.g_top_k < 1 else None
            g_loss = bce_generator_loss(scores, self.g_loss, top_k)
        step("generator", g_loss)
        self.update_ema()

        real_logits, fake_logits = real_logits.detach().float(), fake_logits.detach().float()
        return {
            "loss/discriminator": d_loss.detach(),
            "loss/generator": g_loss.detach(),
            "discriminator/D(x)": torch.sigmoid(real_logits).mean(),
            "discriminator/D(G(z))": torch.sigmoid(fake_logits).mean(),
            "discriminator/accuracy_real": (real_logits > 0).float().mean(),
            "discriminator/accuracy_fake": (fake_logits < 0).float().mean(),
        }


class GAN(BinaryGame):
    """The paper's setting: fully connected G (ReLU) and D (LeakyReLU, or the paper's maxout).

    ``g_lr`` / ``d_lr`` (not in the paper): a network's own learning rate instead of the
    optimizer's, the two time-scale update rule (Heusel et al. 2017).

    With ``n_steps_decay`` > 0 (not in the paper, which keeps the rate constant) both rates
    fall linearly to zero over that many steps after the first ``n_steps``.
    """

    schedule_per_step: ClassVar[bool] = True
    schedule_settings: ClassVar[tuple[str, ...]] = ("n_steps", "n_steps_decay")
    settings_added_later: ClassVar[dict[str, Any]] = {
        "d_dropout": 0.0,
        "d_maxout_pieces": 0,
        "d_minibatch_std": False,
        "g_lr": None,
        "d_lr": None,
        "n_steps": 0,
        "n_steps_decay": 0,
        "d_real_label": 1.0,
        "g_top_k": 1.0,
        "d_pack": 1,
    }

    def __init__(
        self,
        image_shape: Sequence[int],
        make_optimizer: OptimizerFactory,
        *,
        nz: int,
        g_hidden: list[int],
        d_hidden: list[int],
        d_dropout: float,
        d_maxout_pieces: int,
        d_minibatch_std: bool,
        g_loss: GeneratorLoss,
        g_lr: float | None,
        d_lr: float | None,
        n_steps: int,
        n_steps_decay: int,
        ema_decay: float,
        d_real_label: float,
        g_top_k: float,
        d_pack: int,
    ):
        generator = MLPGenerator(nz, g_hidden, image_shape)
        discriminator = MLPDiscriminator(image_shape, d_hidden, d_dropout, d_maxout_pieces, d_minibatch_std, d_pack)
        rates = {"generator": g_lr, "discriminator": d_lr}
        super().__init__(image_shape, make_optimizer, generator, discriminator, nz, g_loss, ema_decay, rates,
                         d_real_label, g_top_k)
        if n_steps_decay:
            self.set_linear_decay(n_steps, n_steps_decay)


mlp_gan = GAN
"""The target name that checkpoints written before GAN became a class store."""
