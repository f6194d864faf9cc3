"""CycleGAN (Zhu et al. 2017): unpaired translation A <-> B with cycle consistency.

Follows junyanz/pytorch-CycleGAN-and-pix2pix: two ResNet generators, two 70x70
PatchGAN discriminators, least-squares adversarial loss, cycle L1 (lambda 10 each
way), identity L1 (0.5 x lambda), discriminator loss halved, pools of 50 past
fakes, generators' step before the discriminators' step.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from gantrain.config import AdversarialLoss, PatchDiscriminatorKind, TranslationNorm
from gantrain.losses import adversarial_loss, gradient_penalty
from gantrain.nets.init import normal_init
from gantrain.nets.patchgan import PatchDiscriminator, PixelDiscriminator
from gantrain.nets.resnet import ResnetGenerator
from gantrain.recipes.base import ImageToImage, OptimizerFactory, frozen
from gantrain.recipes.image_pool import ImagePool
from gantrain.step import Step


def patch_discriminator(
    kind: PatchDiscriminatorKind, in_channels: int, ndf: int, n_layers: int, norm: TranslationNorm
) -> nn.Module:
    """The discriminator named by ``model.discriminator``, with N(0, 0.02) init."""
    kind, norm = PatchDiscriminatorKind(kind), TranslationNorm(norm).value
    if kind == PatchDiscriminatorKind.pixel:
        network = PixelDiscriminator(in_channels, ndf, norm=norm)
    else:
        network = PatchDiscriminator(in_channels, ndf, 3 if kind == PatchDiscriminatorKind.basic else n_layers, norm)
    network.apply(normal_init)
    return network


class CycleGAN(ImageToImage):
    def __init__(
        self,
        image_shape: Sequence[int],
        make_optimizer: OptimizerFactory,
        ngf: int = 64,
        ndf: int = 64,
        discriminator: PatchDiscriminatorKind = PatchDiscriminatorKind.basic,
        n_layers_d: int = 3,
        norm: TranslationNorm = TranslationNorm.instance,
        gan_loss: AdversarialLoss = AdversarialLoss.lsgan,
        gp_weight: float = 10.0,
        n_epochs: int = 100,
        n_epochs_decay: int = 100,
        n_blocks: int = 9,
        use_dropout: bool = False,
        lambda_a: float = 10.0,
        lambda_b: float = 10.0,
        lambda_identity: float = 0.5,
        pool_size: int = 50,
    ):
        super().__init__()
        channels = image_shape[0]
        norm = TranslationNorm(norm)
        self.generator_ab = ResnetGenerator(channels, channels, ngf, n_blocks, norm.value, use_dropout)
        self.generator_ba = ResnetGenerator(channels, channels, ngf, n_blocks, norm.value, use_dropout)
        self.generator_ab.apply(normal_init)
        self.generator_ba.apply(normal_init)
        # discriminator_b tells real B from G_ab(A) (the reference's D_A), discriminator_a the reverse
        self.discriminator_a = patch_discriminator(discriminator, channels, ndf, n_layers_d, norm)
        self.discriminator_b = patch_discriminator(discriminator, channels, ndf, n_layers_d, norm)
        self.pool_a, self.pool_b = ImagePool(pool_size), ImagePool(pool_size)
        self.gan_loss = AdversarialLoss(gan_loss)
        self.gp_weight = gp_weight
        self.lambda_a, self.lambda_b, self.lambda_identity = lambda_a, lambda_b, lambda_identity
        self.set_optimization(
            make_optimizer,
            {
                "generators": itertools.chain(self.generator_ab.parameters(), self.generator_ba.parameters()),
                "discriminators": itertools.chain(self.discriminator_a.parameters(), self.discriminator_b.parameters()),
            },
            n_epochs,
            n_epochs_decay,
        )

    def discriminator_loss(
        self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, step: Step
    ) -> torch.Tensor:
        """Half the sum over real and (pooled) fake images, plus the penalty for ``wgangp``."""
        loss = 0.5 * (
            adversarial_loss(discriminator(real), True, self.gan_loss)
            + adversarial_loss(discriminator(fake), False, self.gan_loss)
        )
        if self.gan_loss == AdversarialLoss.wgangp:
            loss = loss + self.gp_weight * gradient_penalty(
                discriminator, real, fake, scale=step.loss_scale(real.device)
            )
        return loss

    def train_step(self, batch: dict[str, torch.Tensor], step: Step) -> dict[str, torch.Tensor]:
        real_a, real_b = batch["A"], batch["B"]
        fake_b = self.generator_ab(real_a)
        fake_a = self.generator_ba(real_b)

        with frozen(self.discriminator_a), frozen(self.discriminator_b):
            adversarial = adversarial_loss(self.discriminator_b(fake_b), True, self.gan_loss) + adversarial_loss(
                self.discriminator_a(fake_a), True, self.gan_loss
            )
        cycle_a = F.l1_loss(self.generator_ba(fake_b), real_a) * self.lambda_a
        cycle_b = F.l1_loss(self.generator_ab(fake_a), real_b) * self.lambda_b
        losses = {"loss/generator_adversarial": adversarial, "loss/cycle_a": cycle_a, "loss/cycle_b": cycle_b}
        if self.lambda_identity > 0:
            # G_ab should leave B images alone, G_ba A images
            losses["loss/identity_a"] = F.l1_loss(self.generator_ba(real_a), real_a) * self.lambda_a * self.lambda_identity
            losses["loss/identity_b"] = F.l1_loss(self.generator_ab(real_b), real_b) * self.lambda_b * self.lambda_identity
        generator_loss = sum(losses.values())
        step("generators", generator_loss)

        loss_d_a = self.discriminator_loss(self.discriminator_a, real_a, self.pool_a(fake_a), step)
        loss_d_b = self.discriminator_loss(self.discriminator_b, real_b, self.pool_b(fake_b), step)
        step("discriminators", loss_d_a + loss_d_b)

        return {
            "loss/generator": generator_loss.detach(),
            "loss/discriminator": (loss_d_a + loss_d_b).detach(),
            "loss/discriminator_a": loss_d_a.detach(),
            "loss/discriminator_b": loss_d_b.detach(),
            **{name: value.detach() for name, value in losses.items()},
        }

    def translate(self, images: torch.Tensor, direction: str) -> torch.Tensor:
        return (self.generator_ab if direction == "AtoB" else self.generator_ba)(images)

    @property
    def size_multiple(self) -> int:
        return 4  # two stride-2 downsamplings

    def visuals(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per row: real | translated | reconstructed | identity (the other generator on the real image)."""
        real_a, real_b = batch["A"], batch["B"]
        fake_b, fake_a = self.generator_ab(real_a), self.generator_ba(real_b)
        return {
            "A_to_B": torch.stack([real_a, fake_b, self.generator_ba(fake_b), self.generator_ba(real_a)], 1),
            "B_to_A": torch.stack([real_b, fake_a, self.generator_ab(fake_a), self.generator_ab(real_b)], 1),
        }

    def real_visuals(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"real_A": batch["A"], "real_B": batch["B"]}

    def compilable_networks(self) -> list[nn.Module]:
        networks = [self.generator_ab, self.generator_ba]
        if self.gan_loss != AdversarialLoss.wgangp:
            networks += [self.discriminator_a, self.discriminator_b]
        return networks
