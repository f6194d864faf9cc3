"""StarGAN v2 (Choi et al. 2020): diverse translation between domains through style codes.

Built from the paper.  A style code comes either from a mapping network F(z, y)
(latent-guided) or from a style encoder E(x_ref, y) (reference-guided); the
generator G(x, s) renders the input in that style.  Each iteration takes two
discriminator steps (latent-guided fakes, then reference-guided ones) and two
generator steps (latent: updates G, F and E; reference: updates G only).

Losses: non-saturating adversarial, R1 on real images (gamma 1), style
reconstruction L1(E(G(x, s), y), s), diversity -L1(G(x, s1), G(x, s2)) whose
weight falls linearly to 0 over ``diversity_decay_steps``, and cycle
L1(G(G(x, s), E(x, y_org)), x).  Samples always come from exponential moving
averages (0.999) of G, F and E.  The optional high-pass skip for faces, which
needs a pretrained landmark network, is left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import Dataset

from gantrain.data.domains import WithReferences
from gantrain.errors import ConfigError
from gantrain.labels import label_spec
from gantrain.losses import r1_penalty
from gantrain.nets.stargan_v2 import Discriminator, Generator, MappingNetwork, StyleEncoder
from gantrain.recipes.base import FIXED_NOISE_SEED, MultiDomain, OptimizerFactory, frozen
from gantrain.step import Step

GENERATOR_GROUP = ("generator", "mapping", "style_encoder")


def nonsaturating_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, 1.0 if real else 0.0))


class StarGANv2(MultiDomain):
    uses_references = True

    def __init__(
        self,
        image_shape: Sequence[int],
        make_optimizer: OptimizerFactory,
        labels: dict[str, Any],
        latent_dim: int = 16,
        style_dim: int = 64,
        mapping_width: int = 512,
        base_width: int | None = None,
        max_width: int = 512,
        lambda_r1: float = 1.0,
        lambda_style: float = 1.0,
        lambda_diversity: float = 1.0,
        diversity_decay_steps: int = 100000,
        lambda_cycle: float = 1.0,
        mapping_lr: float = 1e-6,
        ema_decay: float = 0.999,
    ):
        spec = label_spec(**labels)
        if spec.multi_label:
            raise ConfigError(
                "StarGAN v2 translates between domains, exactly one per image, but this dataset labels images "
                f"with several attributes ({', '.join(spec.names)}): use a domain dataset such as "
                "dataset=shapes_domains, afhq, celeba_hq or domains dataset.path=..., or model=stargan."
            )
        super().__init__(spec, image_shape)
        channels, image_size, domains = image_shape[0], image_shape[-1], spec.size
        self.latent_dim = latent_dim
        self.generator = Generator(image_size, channels, style_dim, base_width, max_width)
        self.mapping = MappingNetwork(domains, latent_dim, style_dim, mapping_width)
        self.style_encoder = StyleEncoder(image_size, domains, channels, style_dim, base_width, max_width)
        self.discriminator = Discriminator(image_size, domains, channels, base_width, max_width)
        average = get_ema_multi_avg_fn(ema_decay)
        self.generator_ema, self.mapping_ema, self.style_encoder_ema = (
            AveragedModel(network, multi_avg_fn=average, use_buffers=True).requires_grad_(False)
            for network in (self.generator, self.mapping, self.style_encoder)
        )
        self.lambda_r1, self.lambda_style, self.lambda_cycle = lambda_r1, lambda_style, lambda_cycle
        self.lambda_diversity, self.diversity_decay_steps = lambda_diversity, diversity_decay_steps
        self.iterations = 0
        self._optimizers = {
            "generator": make_optimizer(self.generator.parameters()),
            "mapping": make_optimizer(self.mapping.parameters(), lr=mapping_lr),
            "style_encoder": make_optimizer(self.style_encoder.parameters()),
            "discriminator": make_optimizer(self.discriminator.parameters()),
        }

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._optimizers

    def training_data(self, dataset: Dataset, seed: int | None = None) -> Dataset:
        return WithReferences(dataset, seed)

    @property
    def diversity_weight(self) -> float:
        """lambda_ds, falling linearly from its initial value to 0 over ``diversity_decay_steps``."""
        if self.diversity_decay_steps <= 0:
            return 0.0
        return self.lambda_diversity * max(0.0, 1.0 - self.iterations / self.diversity_decay_steps)

    def latent(
        self, count: int, device: torch.device, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Latent codes z ~ N(0, I): from ``generator`` (on the CPU) when given, else from the global RNG."""
        if generator is None:
            return torch.randn(count, self.latent_dim, device=device)
        return torch.randn(count, self.latent_dim, generator=generator).to(device)

    def discriminator_loss(
        self,
        real: torch.Tensor,
        labels: torch.Tensor,
        target: torch.Tensor,
        target_style: torch.Tensor,
        loss_scale: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        real = real.detach().requires_grad_(True)
        real_logits = self.discriminator(real, labels)
        penalty = r1_penalty(real_logits, real, loss_scale)
        with torch.no_grad():
            fake = self.generator(real, target_style)
        fake_logits = self.discriminator(fake, target)
        real_loss, fake_loss = nonsaturating_loss(real_logits, True), nonsaturating_loss(fake_logits, False)
        return real_loss + fake_loss + self.lambda_r1 * penalty, {
            "real": real_loss.detach(),
            "fake": fake_loss.detach(),
            "r1": penalty.detach(),
        }

    def generator_loss(
        self,
        real: torch.Tensor,
        labels: torch.Tensor,
        target: torch.Tensor,
        styles: tuple[torch.Tensor, torch.Tensor],
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Adversarial + style + cycle - diversity, for two target styles of the same domain."""
        fake = self.generator(real, styles[0])
        with frozen(self.discriminator):
            adversarial = nonsaturating_loss(self.discriminator(fake, target), True)
        style = F.l1_loss(self.style_encoder(fake, target), styles[0])
        diversity = F.l1_loss(fake, self.generator(real, styles[1]).detach())
        cycle = F.l1_loss(self.generator(fake, self.style_encoder(real, labels)), real)
        loss = (
            adversarial
            + self.lambda_style * style
            - self.diversity_weight * diversity
            + self.lambda_cycle * cycle
        )
        return loss, {
            "adversarial": adversarial.detach(),
            "style": style.detach(),
            "diversity": diversity.detach(),
            "cycle": cycle.detach(),
        }

    def train_step(self, batch: dict[str, torch.Tensor], step: Step) -> dict[str, torch.Tensor]:
        real, labels, target = batch["image"], batch["label"], batch["reference_label"]
        references = (batch["reference"], batch["reference_2"])
        latents = (self.latent(real.size(0), real.device), self.latent(real.size(0), real.device))
        metrics = {}

        with torch.no_grad():
            latent_style = self.mapping(latents[0], target)
        loss, parts = self.discriminator_loss(real, labels, target, latent_style, step.loss_scale(real.device))
        step("discriminator", loss)
        metrics |= {f"discriminator_latent/{name}": value for name, value in parts.items()}
        with torch.no_grad():
            reference_style = self.style_encoder(references[0], target)
        loss, parts = self.discriminator_loss(real, labels, target, reference_style, step.loss_scale(real.device))
        step("discriminator", loss)
        metrics |= {f"discriminator_reference/{name}": value for name, value in parts.items()}
        metrics["loss/discriminator"] = loss.detach()

        loss, parts = self.generator_loss(
            real, labels, target, tuple(self.mapping(z, target) for z in latents)
        )
        step(GENERATOR_GROUP, loss)
        metrics |= {f"generator_latent/{name}": value for name, value in parts.items()}
        with frozen(self.mapping), frozen(self.style_encoder):
            styles = tuple(self.style_encoder(image, target) for image in references)
            loss, parts = self.generator_loss(real, labels, target, styles)
        step("generator", loss)
        metrics |= {f"generator_reference/{name}": value for name, value in parts.items()}
        metrics["loss/generator"] = loss.detach()

        for average, network in (
            (self.generator_ema, self.generator),
            (self.mapping_ema, self.mapping),
            (self.style_encoder_ema, self.style_encoder),
        ):
            average.update_parameters(network)
        self.iterations += 1
        metrics["lambda/diversity"] = torch.tensor(self.diversity_weight)
        return metrics

    def translate_named(
        self,
        images: torch.Tensor,
        target: Sequence[str],
        references: torch.Tensor | None = None,
        num_styles: int = 1,
    ) -> torch.Tensor:
        """N x K x C x H x W with the averaged networks: K reference styles, or ``num_styles`` random ones."""
        domain = self.labels.named_target(
            target, torch.zeros(images.size(0), dtype=torch.long, device=images.device)
        )
        if references is not None:
            styles = self.style_encoder_ema(references, domain[:1].expand(len(references)))
        else:
            latents = self.latent(num_styles, images.device)
            styles = self.mapping_ema(latents, domain[:1].expand(num_styles))
        return torch.stack([self.generator_ema(images, style.expand(len(images), -1)) for style in styles], 1)

    def visuals(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Latent-guided: the input, then one column per domain (a fixed code each).

        Reference-guided: a header row of the first eight references, then each input
        rendered in each reference's style.
        """
        real = batch["image"]
        count, device = real.size(0), real.device
        latents = self.latent(self.labels.size, device, torch.Generator().manual_seed(FIXED_NOISE_SEED))
        domains = torch.arange(self.labels.size, device=device)
        latent_styles = self.mapping_ema(latents, domains)
        latent_columns = [self.generator_ema(real, style.expand(count, -1)) for style in latent_styles]

        references, reference_labels = batch["reference"][:8], batch["reference_label"][:8]
        reference_styles = self.style_encoder_ema(references, reference_labels)
        reference_columns = torch.stack(
            [self.generator_ema(real, style.expand(count, -1)) for style in reference_styles], 1
        )
        header = torch.cat([torch.full_like(real[:1], -1.0), references]).unsqueeze(0)
        return {
            "latent_guided": torch.stack([real, *latent_columns], 1),
            "reference_guided": torch.cat([header, torch.cat([real.unsqueeze(1), reference_columns], 1)]),
        }

    def real_visuals(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"real": batch["image"]}

    def generated_and_real(
        self, batch: dict[str, torch.Tensor], generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent-guided translations to random domains, with the averaged networks."""
        real = batch["image"]
        domains = torch.randint(self.labels.size, (real.size(0),), generator=generator).to(real.device)
        styles = self.mapping_ema(self.latent(real.size(0), real.device, generator), domains)
        return self.generator_ema(real, styles), real

    def compilable_networks(self) -> list[nn.Module]:
        # the discriminator is differentiated twice by R1
        return [self.generator, self.mapping, self.style_encoder]

    def get_extra_state(self) -> dict[str, int]:
        return {"iterations": self.iterations}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.iterations = int(state["iterations"])
