"""pix2pix (Isola et al. 2017): paired translation with a U-Net and a conditional PatchGAN.

Follows junyanz/pytorch-CycleGAN-and-pix2pix: the discriminator sees the input and
the output concatenated along channels; vanilla GAN loss plus 100 x L1 to the
target; discriminator loss halved; discriminator step before generator step;
BatchNorm; no image pool.  Dropout in the decoder stays on when sampling: it is
the model's only source of noise.
"""

from __future__ import annotations

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
    unet_generator_layout,
    unet_generator_settings,
)
from gantrain.nets.patchgan import patch_discriminator
from gantrain.nets.unet import UnetGenerator
from gantrain.options import AdversarialLoss, Direction, ImageNorm, PatchDiscriminatorKind, UnetKind
from gantrain.recipes.base import ImageToImage, OptimizerFactory, frozen
from gantrain.step import Step
from gantrain.task_metrics import held_out_batches, image_fidelity


class Pix2Pix(ImageToImage):
    embedded_dataset = "shapes_paired"
    headline_metrics = ("psnr", "ssim")
    official_files: ClassVar[tuple[OfficialFile, ...]] = (
        OfficialFile("G", "{step}_net_G.pth", "the generator", any_name=True),
        OfficialFile("D", "{step}_net_D.pth", "the conditional discriminator"),
    )
    """What the reference writes (a published model is latest_net_G.pth alone: scripts/download_pix2pix_model.sh)."""
    published_models: ClassVar[dict[str, tuple[str, Direction]]] = {
        "facades_label2photo": ("facades", Direction.BtoA),  # the reference's README: facades' A -> B is photo -> label
        "edges2shoes": ("edges2shoes", Direction.AtoB),
        "day2night": ("night2day", Direction.BtoA),
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
        generator: UnetKind,
        use_dropout: bool,
        lambda_l1: float,
        direction: Direction,
    ):
        super().__init__(image_shape)
        channels = image_shape[0]
        norm = ImageNorm(norm)
        self.downsamplings = int(UnetKind(generator).value.removeprefix("unet_")).bit_length() - 1
        self.generator = UnetGenerator(channels, channels, self.downsamplings, ngf, norm.value, use_dropout)
        self.generator.apply(normal_init)
        self.discriminator = patch_discriminator(discriminator, 2 * channels, ndf, n_layers_d, norm)
        self.gan_loss = AdversarialLoss(gan_loss)
        self.lambda_gp = lambda_gp
        self.lambda_l1 = lambda_l1
        self.direction = Direction(direction)
        self.set_optimizers(
            make_optimizer, {"generator": self.generator.parameters(), "discriminator": self.discriminator.parameters()}
        )
        self.set_linear_decay(n_epochs, n_epochs_decay)

    @classmethod
    def official_import(cls, weights: dict[str, Weights], request: ImportRequest) -> OfficialImport:
        """The U-Net and, from a training run, the discriminator; the U-Net's depth sets the image size, the
        published model's name (or ``direction``) the direction."""
        if "G" not in weights:
            raise ConfigError(
                "A pix2pix import needs the generator, latest_net_G.pth (a published model is that file alone)."
            )
        dataset, direction = request.published(cls.published_models) or ("aligned", Direction.AtoB)
        dataset, direction = request.dataset or dataset, request.direction or direction
        generator = unet_generator_settings(weights["G"])
        size = 2 ** generator["downsamplings"]  # unet_256 halves 256 pixels down to 1
        model = {"ngf": generator["ngf"], "norm": generator["norm"], "generator": f"unet_{size}",
                 "direction": direction.value}
        if "D" in weights:
            found = patch_discriminator_settings(weights["D"])
            model |= {key: found[key] for key in ("ndf", "discriminator", "n_layers_d")}
        layouts = {"G": ("generator", unet_generator_layout), "D": ("discriminator", patch_discriminator_layout)}
        return OfficialImport(
            dataset,
            model,
            {"channels": generator["channels"], "image_size": request.image_size or size},
            {role: (Placement("", (layouts[role][0],), layouts[role][1]),) for role in weights},
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

    def run_step(self, batch: dict[str, torch.Tensor], step: Step, plan: None) -> dict[str, torch.Tensor]:
        source, target = self.pair(batch)
        fake = self.generator(source)

        d_loss, penalty = self.discriminator_losses(
            self.discriminator, torch.cat([source, target], 1), torch.cat([source, fake.detach()], 1), step
        )
        step("discriminator", d_loss if penalty is None else d_loss + penalty)

        with frozen(self.discriminator):
            g_adversarial = adversarial_loss(
                self.discriminator(torch.cat([source, fake], 1)), True, self.gan_loss, generator=True
            )
        g_l1 = F.l1_loss(fake, target) * self.lambda_l1
        step("generator", g_adversarial + g_l1)

        metrics = {
            "loss/discriminator": d_loss.detach(),
            "loss/generator": (g_adversarial + g_l1).detach(),
            "loss/generator_adversarial": g_adversarial.detach(),
            "loss/l1": g_l1.detach(),
        }
        if penalty is not None:
            metrics["critic/gradient_penalty"] = penalty.detach()
        return metrics

    @property
    def evaluation_direction(self) -> str:
        return self.direction.value

    def check_direction(self, direction: str) -> None:
        if direction != self.direction.value:
            raise ConfigError(
                f"This pix2pix model was trained {self.direction.value} and translates only that way: "
                f"pass direction={self.direction.value}."
            )

    def translate(self, images: torch.Tensor, direction: str) -> torch.Tensor:
        self.check_direction(direction)
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

    def exportables(self, direction: str | None) -> dict[str, Exportable]:
        """The generator in its trained direction, dropout off (ONNX Runtime drops it anyway; a served model
        gives one answer per input), training size with a dynamic batch."""
        if direction is not None:
            self.check_direction(Direction(direction).value)
        self.generator.eval()  # dropout off too, which the recipe's own eval() keeps on
        return {"generator": self.translation_exportable(self.generator, self.direction.value, dynamic_sides=False)}

    def task_metrics(
        self, dataset: Dataset, count: int, generator: torch.Generator, lpips_weights: str | None
    ) -> dict[str, float]:
        """Mean per-image L1 (in [-1, 1] units), PSNR and SSIM against the known targets of paired data."""
        if not getattr(dataset, "paired", False):
            return {}
        per_image: dict[str, list[torch.Tensor]] = {"l1": [], "psnr": [], "ssim": []}
        for batch in held_out_batches(dataset, count, self.device):
            source, target = self.pair(batch)
            for name, values in image_fidelity(self.generator(source).float(), target.float()).items():
                per_image[name].append(values.cpu())
        return {name: float(torch.cat(values).mean()) for name, values in per_image.items()}
