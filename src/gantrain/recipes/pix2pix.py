"""pix2pix (Isola et al. 2017): paired translation with a U-Net and a conditional PatchGAN.

Follows junyanz/pytorch-CycleGAN-and-pix2pix: the discriminator sees the input and
the output concatenated along channels; vanilla GAN loss plus 100 x L1 to the
target; discriminator loss halved; discriminator step before generator step;
BatchNorm; no image pool.  Dropout in the decoder stays on when sampling: it is
the model's only source of noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from gantrain.config import AdversarialLoss, Direction, PatchDiscriminatorKind, TranslationNorm, UnetKind
from gantrain.errors import ConfigError
from gantrain.losses import adversarial_loss, gradient_penalty
from gantrain.nets.init import normal_init
from gantrain.nets.unet import UnetGenerator
from gantrain.recipes.base import ImageToImage, OptimizerFactory, frozen
from gantrain.recipes.cyclegan import patch_discriminator
from gantrain.step import Step


class Pix2Pix(ImageToImage):
    def __init__(
        self,
        image_shape: Sequence[int],
        make_optimizer: OptimizerFactory,
        ngf: int = 64,
        ndf: int = 64,
        discriminator: PatchDiscriminatorKind = PatchDiscriminatorKind.basic,
        n_layers_d: int = 3,
        norm: TranslationNorm = TranslationNorm.batch,
        gan_loss: AdversarialLoss = AdversarialLoss.vanilla,
        gp_weight: float = 10.0,
        n_epochs: int = 100,
        n_epochs_decay: int = 100,
        generator: UnetKind = UnetKind.unet_256,
        use_dropout: bool = True,
        lambda_l1: float = 100.0,
        direction: Direction = Direction.AtoB,
    ):
        super().__init__()
        channels = image_shape[0]
        norm = TranslationNorm(norm)
        self.downsamplings = int(UnetKind(generator).value.removeprefix("unet_")).bit_length() - 1
        self.generator = UnetGenerator(channels, channels, self.downsamplings, ngf, norm.value, use_dropout)
        self.generator.apply(normal_init)
        self.discriminator = patch_discriminator(discriminator, 2 * channels, ndf, n_layers_d, norm)
        self.gan_loss = AdversarialLoss(gan_loss)
        self.gp_weight = gp_weight
        self.lambda_l1 = lambda_l1
        self.direction = Direction(direction)
        self.set_optimization(
            make_optimizer,
            {"generator": self.generator.parameters(), "discriminator": self.discriminator.parameters()},
            n_epochs,
            n_epochs_decay,
        )

    def train(self, mode: bool = True) -> Pix2Pix:
        """Evaluation mode leaves the generator's dropout on (the paper's noise)."""
        super().train(mode)
        for module in self.generator.modules():
            if isinstance(module, nn.Dropout):
                module.train(True)
        return self

    def pair(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(input, target) in the configured direction."""
        if self.direction == Direction.AtoB:
            return batch["A"], batch["B"]
        return batch["B"], batch["A"]

    def train_step(self, batch: dict[str, torch.Tensor], step: Step) -> dict[str, torch.Tensor]:
        source, target = self.pair(batch)
        fake = self.generator(source)

        real_pair = torch.cat([source, target], 1)
        fake_pair = torch.cat([source, fake.detach()], 1)
        real_scores, fake_scores = self.discriminator(real_pair), self.discriminator(fake_pair)
        d_loss = 0.5 * (
            adversarial_loss(real_scores, True, self.gan_loss) + adversarial_loss(fake_scores, False, self.gan_loss)
        )
        if self.gan_loss == AdversarialLoss.wgangp:
            d_loss = d_loss + self.gp_weight * gradient_penalty(
                self.discriminator, real_pair, fake_pair, scale=step.loss_scale(source.device)
            )
        step("discriminator", d_loss)

        with frozen(self.discriminator):
            g_adversarial = adversarial_loss(self.discriminator(torch.cat([source, fake], 1)), True, self.gan_loss)
        g_l1 = F.l1_loss(fake, target) * self.lambda_l1
        step("generator", g_adversarial + g_l1)

        return {
            "loss/discriminator": d_loss.detach(),
            "loss/generator": (g_adversarial + g_l1).detach(),
            "loss/generator_adversarial": g_adversarial.detach(),
            "loss/l1": g_l1.detach(),
        }

    @property
    def evaluation_direction(self) -> str:
        return self.direction.value

    def translate(self, images: torch.Tensor, direction: str) -> torch.Tensor:
        if direction != self.direction.value:
            raise ConfigError(
                f"This pix2pix model was trained {self.direction.value} and translates only that way: "
                f"pass direction={self.direction.value}."
            )
        return self.generator(images)

    @property
    def size_multiple(self) -> int:
        return 2**self.downsamplings  # the U-Net reduces the image to 1x1

    def visuals(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per row: input | output | target."""
        source, target = self.pair(batch)
        return {"translation": torch.stack([source, self.generator(source), target], 1)}

    def real_visuals(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        source, target = self.pair(batch)
        return {"input": source, "target": target}

    def compilable_networks(self) -> list[nn.Module]:
        if self.gan_loss == AdversarialLoss.wgangp:
            return [self.generator]
        return [self.generator, self.discriminator]
