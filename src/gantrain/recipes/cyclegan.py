"""CycleGAN (Zhu et al. 2017): unpaired translation A <-> B with cycle consistency.

Follows junyanz/pytorch-CycleGAN-and-pix2pix: two ResNet generators, two 70x70
PatchGAN discriminators, least-squares adversarial loss, cycle L1 (lambda 10 each
way), identity L1 (0.5 x lambda), discriminator loss halved, pools of 50 past
fakes, generators' step before the discriminators' step.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from gantrain.errors import ConfigError
from gantrain.inference import Exportable
from gantrain.losses import adversarial_loss
from gantrain.nets.init import normal_init
from gantrain.nets.official_weights import (
    ImportRequest,
    OfficialFile,
    OfficialImport,
    Placement,
    Weights,
    patch_discriminator_layout,
    patch_discriminator_settings,
    resnet_generator_layout,
    resnet_generator_settings,
)
from gantrain.nets.patchgan import patch_discriminator
from gantrain.nets.resnet import ResnetGenerator
from gantrain.options import AdversarialLoss, Direction, ImageNorm, PatchDiscriminatorKind
from gantrain.recipes.base import ImageToImage, OptimizerFactory, frozen
from gantrain.recipes.image_pool import ImagePool
from gantrain.step import Step
from gantrain.task_metrics import held_out_batches


class CycleGAN(ImageToImage):
    embedded_dataset = "shapes_unpaired"
    headline_metrics = ("all_kept",)
    official_files: ClassVar[tuple[OfficialFile, ...]] = (
        OfficialFile("G_A", "{step}_net_G_A.pth", "the generator A -> B"),
        OfficialFile("G_B", "{step}_net_G_B.pth", "the generator B -> A"),
        OfficialFile("D_A", "{step}_net_D_A.pth", "the discriminator of B images (it judges G_A's output)"),
        OfficialFile("D_B", "{step}_net_D_B.pth", "the discriminator of A images"),
        OfficialFile("G", "{step}_net_G.pth", "one generator, as the pretrained models are published", any_name=True),
    )
    """What the reference writes: a training run's checkpoints/<name>/ files, and a published model's
    latest_net_G.pth (scripts/download_cyclegan_model.sh)."""
    published_models: ClassVar[dict[str, tuple[str, Direction]]] = {
        "horse2zebra": ("horse2zebra", Direction.AtoB),
        "zebra2horse": ("horse2zebra", Direction.BtoA),
        "apple2orange": ("apple2orange", Direction.AtoB),
        "orange2apple": ("apple2orange", Direction.BtoA),
        "summer2winter_yosemite": ("summer2winter_yosemite", Direction.AtoB),
        "winter2summer_yosemite": ("summer2winter_yosemite", Direction.BtoA),
        "monet2photo": ("monet2photo", Direction.AtoB),
        "style_monet": ("monet2photo", Direction.BtoA),
        "style_cezanne": ("cezanne2photo", Direction.BtoA),
        "style_ukiyoe": ("ukiyoe2photo", Direction.BtoA),
        "style_vangogh": ("vangogh2photo", Direction.BtoA),
        "iphone2dslr_flower": ("iphone2dslr_flower", Direction.AtoB),
    }
    """Published models whose dataset gantrain has, with the direction each translates in that dataset's A/B."""

    def __init__(
        self,
        image_shape: Sequence[int],
        make_optimizer: OptimizerFactory,
        *,
        ngf: int,
        ndf: int,
        discriminator: PatchDiscriminatorKind,
        n_layers_d: int,
        norm: ImageNorm,
        gan_loss: AdversarialLoss,
        lambda_gp: float,
        n_epochs: int,
        n_epochs_decay: int,
        n_blocks: int,
        use_dropout: bool,
        lambda_a: float,
        lambda_b: float,
        lambda_identity: float,
        pool_size: int,
    ):
        super().__init__(image_shape)
        channels = image_shape[0]
        norm = ImageNorm(norm)
        self.generator_ab = ResnetGenerator(channels, channels, ngf, n_blocks, norm.value, use_dropout)
        self.generator_ba = ResnetGenerator(channels, channels, ngf, n_blocks, norm.value, use_dropout)
        self.generator_ab.apply(normal_init)
        self.generator_ba.apply(normal_init)
        # discriminator_b tells real B from G_ab(A) (the reference's D_A), discriminator_a the reverse
        self.discriminator_a = patch_discriminator(discriminator, channels, ndf, n_layers_d, norm)
        self.discriminator_b = patch_discriminator(discriminator, channels, ndf, n_layers_d, norm)
        self.pool_a, self.pool_b = ImagePool(pool_size), ImagePool(pool_size)
        self.gan_loss = AdversarialLoss(gan_loss)
        self.lambda_gp = lambda_gp
        self.lambda_a, self.lambda_b, self.lambda_identity = lambda_a, lambda_b, lambda_identity
        self.set_optimizers(
            make_optimizer,
            {
                "generators": itertools.chain(self.generator_ab.parameters(), self.generator_ba.parameters()),
                "discriminators": itertools.chain(self.discriminator_a.parameters(), self.discriminator_b.parameters()),
            },
        )
        self.set_linear_decay(n_epochs, n_epochs_decay)

    @classmethod
    def official_import(cls, weights: dict[str, Weights], request: ImportRequest) -> OfficialImport:
        """Generators and discriminators from their files (the reference's D_A judges B images, so it is
        ``discriminator_b``); a lone published generator translates one way, the published model's or
        ``direction``."""
        if "G" in weights and {"G_A", "G_B"} & weights.keys():
            raise ConfigError(
                "The weights hold both a lone generator (latest_net_G.pth) and a training run's generators "
                "(latest_net_G_A.pth / latest_net_G_B.pth): import one or the other."
            )
        generators = [role for role in ("G", "G_A", "G_B") if role in weights]
        if not generators:
            raise ConfigError(
                f"A CycleGAN import needs a generator: a training run's latest_net_G_A.pth and/or "
                f"latest_net_G_B.pth, or a published model's latest_net_G.pth (found only "
                f"{', '.join(str(w.path) for w in weights.values())})."
            )
        dataset, direction = request.published(cls.published_models) or ("unaligned", Direction.AtoB)
        dataset, direction = request.dataset or dataset, request.direction or direction
        generator = resnet_generator_settings(weights[generators[0]])
        model = {key: generator[key] for key in ("ngf", "n_blocks", "norm", "use_dropout")}
        discriminators = [role for role in ("D_A", "D_B") if role in weights]
        if discriminators:
            found = patch_discriminator_settings(weights[discriminators[0]])
            model |= {key: found[key] for key in ("ndf", "discriminator", "n_layers_d")}
        lone = "generator_ab" if direction == Direction.AtoB else "generator_ba"
        targets = {"G_A": "generator_ab", "G_B": "generator_ba", "D_A": "discriminator_b", "D_B": "discriminator_a",
                   "G": lone}
        layouts = {"G": resnet_generator_layout, "D": patch_discriminator_layout}
        notes = []
        if generators != ["G_A", "G_B"]:
            only = {"G": direction, "G_A": Direction.AtoB, "G_B": Direction.BtoA}[generators[0]].value
            notes.append(f"These weights translate one way, {only} ({targets[generators[0]]}): translate and export "
                         f"with direction={only}; the other generator keeps its random initial weights.")
        return OfficialImport(
            dataset,
            model,
            {"channels": generator["channels"]} | ({"image_size": request.image_size} if request.image_size else {}),
            {role: (Placement("", (targets[role],), layouts[role[0]]),) for role in weights},
            notes=notes,
        )

    def plan_step(self, batch_size: int) -> None:
        """The pools' choices for this step's fakes, drawn on the host in the reference's order."""
        self.pool_a.plan(batch_size, self.device)
        self.pool_b.plan(batch_size, self.device)

    def run_step(self, batch: dict[str, torch.Tensor], step: Step, plan: None) -> dict[str, torch.Tensor]:
        real_a, real_b = batch["A"], batch["B"]
        fake_b = self.generator_ab(real_a)
        fake_a = self.generator_ba(real_b)

        with frozen(self.discriminator_a), frozen(self.discriminator_b):
            adversarial = adversarial_loss(
                self.discriminator_b(fake_b), True, self.gan_loss, generator=True
            ) + adversarial_loss(self.discriminator_a(fake_a), True, self.gan_loss, generator=True)
        terms = {
            "loss/cycle_a": F.l1_loss(self.generator_ba(fake_b), real_a) * self.lambda_a,
            "loss/cycle_b": F.l1_loss(self.generator_ab(fake_a), real_b) * self.lambda_b,
        }
        if self.lambda_identity > 0:
            # G_ab should leave B images alone, G_ba A images
            terms["loss/identity_a"] = F.l1_loss(self.generator_ba(real_a), real_a) * self.lambda_a * self.lambda_identity
            terms["loss/identity_b"] = F.l1_loss(self.generator_ab(real_b), real_b) * self.lambda_b * self.lambda_identity
        generator_loss = adversarial + sum(terms.values())
        step("generators", generator_loss)

        loss_d_a, penalty_a = self.discriminator_losses(self.discriminator_a, real_a, self.pool_a(fake_a), step)
        loss_d_b, penalty_b = self.discriminator_losses(self.discriminator_b, real_b, self.pool_b(fake_b), step)
        penalty = None if penalty_a is None else penalty_a + penalty_b
        step("discriminators", loss_d_a + loss_d_b + (0 if penalty is None else penalty))

        metrics = {
            "loss/generator": generator_loss.detach(),
            "loss/generator_adversarial": adversarial.detach(),
            "loss/discriminator": (loss_d_a + loss_d_b).detach(),
            "loss/discriminator_a": loss_d_a.detach(),
            "loss/discriminator_b": loss_d_b.detach(),
            **{name: value.detach() for name, value in terms.items()},
        }
        if penalty is not None:
            metrics["critic/gradient_penalty"] = penalty.detach()
        return metrics

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

    def exportables(self, direction: str | None) -> dict[str, Exportable]:
        """Either generator (``direction``, A -> B when unset), with dynamic batch and sides."""
        direction = Direction(direction or Direction.AtoB).value
        network = self.generator_ab if direction == "AtoB" else self.generator_ba
        return {"generator": self.translation_exportable(network, direction, dynamic_sides=True)}

    def task_metrics(
        self, dataset: Dataset, count: int, generator: torch.Generator, lpips_weights: str | None
    ) -> dict[str, float]:
        """The dataset's judge of held-out A images translated to B, where it has one."""
        judge = getattr(dataset, "judge_translations", None)
        if judge is None:
            return {}
        inputs, outputs = [], []
        for batch in held_out_batches(dataset, count, self.device):
            inputs.append(batch["A"].cpu())
            outputs.append(self.translate(batch["A"], "AtoB").float().cpu())
        return judge(torch.cat(inputs), torch.cat(outputs))
