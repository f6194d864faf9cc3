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

from collections.abc import Callable, Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from gantrain.data.domains import WithReferences
from gantrain.errors import ConfigError
from gantrain.inference import BATCH, EXAMPLE_BATCH, Exportable, StyleTranslationModel, example_images
from gantrain.labels import LabelsConfig, label_spec
from gantrain.losses import adversarial_loss, r1_penalty
from gantrain.nets.official_weights import (
    ImportRequest,
    Layout,
    OfficialFile,
    OfficialImport,
    Placement,
    Weights,
    stargan_v2_discriminator_layout,
    stargan_v2_generator_layout,
    stargan_v2_mapping_layout,
    stargan_v2_settings,
    stargan_v2_style_encoder_layout,
)
from gantrain.nets.stargan_v2 import (
    Discriminator,
    Generator,
    MappingNetwork,
    StyleEncoder,
    default_base_width,
)
from gantrain.options import AdversarialLoss
from gantrain.recipes.base import (
    FIXED_NOISE_SEED,
    MultiDomain,
    OptimizerFactory,
    frozen,
    gaussian,
    moving_average,
    unwrapped,
)
from gantrain.step import Step
from gantrain.task_metrics import BATCH_SIZE, held_out_batches, lpips_metric

GENERATOR_GROUP = ("generator", "mapping", "style_encoder")
NON_SATURATING = AdversarialLoss.vanilla  # binary cross-entropy on logits: the non-saturating game


class StarGANv2(MultiDomain):
    uses_references = True
    inference_model = StyleTranslationModel
    embedded_dataset = "shapes_domains"
    schedule_settings = ("diversity_decay_steps",)
    headline_metrics = ("latent_all_kept", "reference_all_kept")
    official_files: ClassVar[tuple[OfficialFile, ...]] = (
        OfficialFile("nets_ema", "{step}_nets_ema.ckpt", "the averaged generator, mapping network and style encoder"),
        OfficialFile("nets", "{step}_nets.ckpt", "the trained networks, the discriminator among them"),
        OfficialFile("optims", "{step}_optims.ckpt", "optimizer state",
                     ignored="optimizer state: an imported run starts with fresh optimizers"),
    )
    """What the reference writes (a published model is 100000_nets_ema.ckpt alone: download.sh)."""
    published_domains: ClassVar[dict[int, tuple[str, tuple[str, ...]]]] = {
        2: ("celeba_hq", ("female", "male")),
        3: ("afhq", ("cat", "dog", "wild")),
    }
    """By the number of domains: the published models' dataset and domains (their folders, sorted)."""
    official_networks: ClassVar[dict[str, tuple[str, Callable[..., Layout]]]] = {
        "generator": ("generator", stargan_v2_generator_layout),
        "mapping_network": ("mapping", stargan_v2_mapping_layout),
        "style_encoder": ("style_encoder", stargan_v2_style_encoder_layout),
    }
    """The averaged networks: the reference's name -> this recipe's attribute and the layout."""

    def __init__(
        self,
        image_shape: Sequence[int],
        make_optimizer: OptimizerFactory,
        *,
        labels: LabelsConfig,
        latent_dim: int,
        style_dim: int,
        mapping_width: int,
        base_width: int | None,
        max_width: int,
        generator_downsamplings: int | None,
        decoder_shortcut: bool,
        lambda_r1: float,
        lambda_style: float,
        lambda_diversity: float,
        diversity_decay_steps: int,
        lambda_cycle: float,
        mapping_lr: float,
        ema_decay: float,
    ):
        spec = label_spec(labels)
        if spec.multi_label:
            raise ConfigError(
                "StarGAN v2 translates between domains, exactly one per image, but this dataset labels images "
                f"with several attributes ({', '.join(spec.names)}): use a domain dataset such as "
                "dataset=shapes_domains, afhq, celeba_hq or domains dataset.path=..., or model=stargan."
            )
        super().__init__(spec, image_shape)
        channels, image_size, domains = image_shape[0], image_shape[-1], spec.size
        self.latent_dim = latent_dim
        self.generator = Generator(
            image_size, channels, style_dim, base_width, max_width, generator_downsamplings, decoder_shortcut
        )
        self.mapping = MappingNetwork(domains, latent_dim, style_dim, mapping_width)
        self.style_encoder = StyleEncoder(image_size, domains, channels, style_dim, base_width, max_width)
        self.discriminator = Discriminator(image_size, domains, channels, base_width, max_width)
        # the reference averages with a fixed decay from the first update (no warm-up)
        self.generator_ema, self.mapping_ema, self.style_encoder_ema = (
            moving_average(network, ema_decay, warm_up=False)
            for network in (self.generator, self.mapping, self.style_encoder)
        )
        self.lambda_r1, self.lambda_style, self.lambda_cycle = lambda_r1, lambda_style, lambda_cycle
        self.lambda_diversity, self.diversity_decay_steps = lambda_diversity, diversity_decay_steps
        self.iterations = 0
        # this iteration's diversity weight, on the device: the plan sets it, the losses read it
        self.register_buffer("diversity_now", torch.zeros(()), persistent=False)
        self.set_optimizers(
            make_optimizer,
            {
                "generator": self.generator.parameters(),
                "mapping": (self.mapping.parameters(), {"lr": mapping_lr}),
                "style_encoder": self.style_encoder.parameters(),
                "discriminator": self.discriminator.parameters(),
            },
        )

    @classmethod
    def official_import(cls, weights: dict[str, Weights], request: ImportRequest) -> OfficialImport:
        """The averaged networks from nets_ema (the published file) and the trained ones, the discriminator
        among them, from nets (a training run's); either fills the other's networks when it is alone.  A
        generator with one more downsampling than the paper's is the official one with the high-pass skip
        (w_hpf > 0): built with its decoder blocks' shortcuts off, without the landmark-guided skip itself."""
        if not weights.keys() & {"nets_ema", "nets"}:
            raise ConfigError("A StarGAN v2 import needs <iterations>_nets_ema.ckpt (such as 100000_nets_ema.ckpt, the "
                              "published file) or a training run's <iterations>_nets.ckpt.")
        found = stargan_v2_settings(weights["nets_ema"] if "nets_ema" in weights else weights["nets"])
        image_size = request.image_size or found["image_size"]
        paper_downsamplings = max(1, image_size.bit_length() - 5)  # log2(image_size) - 4
        high_pass = found["downsamplings"] == paper_downsamplings + 1
        model = {key: found[key] for key in ("latent_dim", "style_dim", "mapping_width", "max_width")}
        model |= {
            "base_width": None if found["first_width"] == min(default_base_width(image_size), found["max_width"])
            else found["first_width"],
            "generator_downsamplings": None if found["downsamplings"] == paper_downsamplings else found["downsamplings"],
            "decoder_shortcut": not high_pass,
        }
        dataset, names = cls.published_domains.get(found["domains"], (None, None))
        dataset, names = request.dataset or dataset, request.labels or names
        if dataset is None or names is None or len(names) != found["domains"]:
            raise ConfigError(
                f"The networks have {found['domains']} domains: name them in the order they were trained with, "
                f"labels=[a,b,...] ({found['domains']} names, the sorted folder names), and their dataset, e.g. "
                f"dataset_option=domains."
            )

        def fills(role: str, network: str) -> tuple[str, ...]:
            """nets_ema fills the averages and nets the trained networks; a file given alone fills both."""
            averaged = f"{network}_ema.module"
            if ("nets" if role == "nets_ema" else "nets_ema") in weights:
                return (averaged if role == "nets_ema" else network,)
            return averaged, network

        landmarks = Placement("fan.", ignored="the FAN landmark network of the high-pass skip (w_hpf > 0), which "
                                              "gantrain does not reproduce")
        placements = {
            role: (
                *(Placement(f"{official}.", fills(role, network), layout)
                  for official, (network, layout) in cls.official_networks.items()),
                *([Placement("discriminator.", ("discriminator",), stargan_v2_discriminator_layout)]
                  if role == "nets" else []),
                landmarks,
            )
            for role in weights
        }
        notes = []
        if high_pass:
            notes.append("The generator is the official one with the high-pass skip (w_hpf=1, as for CelebA-HQ): "
                         "gantrain builds its extra downsampling and its decoder without shortcuts, but not the "
                         "skip, which needs the FAN landmark network (wing.ckpt), so translations lack the detail "
                         "it carries around the eyes, nose and mouth (docs/pretrained.md).")
        return OfficialImport(
            dataset,
            model,
            {"channels": found["channels"], "image_size": image_size},
            placements,
            labels=LabelsConfig(list(names), [], False),
            # the averages hold averaged weights already: they go on averaging rather than restart as a copy
            counters={f"{network}_ema.n_averaged": 1 for network, _ in cls.official_networks.values()}
            if "nets_ema" in weights else {},
            notes=notes,
        )

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
        return gaussian(count, self.latent_dim, device, generator)

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
        real_loss = adversarial_loss(real_logits, True, NON_SATURATING)
        fake_loss = adversarial_loss(fake_logits, False, NON_SATURATING)
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
            adversarial = adversarial_loss(self.discriminator(fake, target), True, NON_SATURATING, generator=True)
        style = F.l1_loss(self.style_encoder(fake, target), styles[0])
        diversity = F.l1_loss(fake, self.generator(real, styles[1]).detach())
        cycle = F.l1_loss(self.generator(fake, self.style_encoder(real, labels)), real)
        loss = (
            adversarial
            + self.lambda_style * style
            - self.diversity_now * diversity
            + self.lambda_cycle * cycle
        )
        return loss, {
            "adversarial": adversarial.detach(),
            "style": style.detach(),
            "diversity": diversity.detach(),
            "cycle": cycle.detach(),
        }

    def plan_step(self, batch_size: int) -> None:
        """The iteration's diversity weight, set on the device (no sync); counts the iteration."""
        self.diversity_now.fill_(self.diversity_weight)
        self.iterations += 1

    def run_step(self, batch: dict[str, torch.Tensor], step: Step, plan: None) -> dict[str, torch.Tensor]:
        real, labels, target = batch["image"], batch["label"], batch["reference_label"]
        references = (batch["reference"], batch["reference_2"])
        latents = (self.latent(real.size(0), real.device), self.latent(real.size(0), real.device))
        metrics = {}

        with torch.no_grad():
            styles = {"latent": self.mapping(latents[0], target), "reference": self.style_encoder(references[0], target)}
        adversarial = []
        for guide, style in styles.items():
            loss, parts = self.discriminator_loss(real, labels, target, style, step.loss_scale(real.device))
            step("discriminator", loss)
            metrics |= {f"discriminator_{guide}/{name}": value for name, value in parts.items()}
            adversarial.append(parts["real"] + parts["fake"])
        metrics["loss/discriminator"] = sum(adversarial)

        latent_loss, parts = self.generator_loss(real, labels, target, tuple(self.mapping(z, target) for z in latents))
        step(GENERATOR_GROUP, latent_loss)
        metrics |= {f"generator_latent/{name}": value for name, value in parts.items()}
        with frozen(self.mapping), frozen(self.style_encoder):
            reference_styles = tuple(self.style_encoder(image, target) for image in references)
            loss, reference_parts = self.generator_loss(real, labels, target, reference_styles)
        step("generator", loss)
        metrics |= {f"generator_reference/{name}": value for name, value in reference_parts.items()}
        metrics["loss/generator"] = (latent_loss + loss).detach()
        metrics["loss/generator_adversarial"] = parts["adversarial"] + reference_parts["adversarial"]

        for average, network in (
            (self.generator_ema, self.generator),
            (self.mapping_ema, self.mapping),
            (self.style_encoder_ema, self.style_encoder),
        ):
            average.update_parameters(network)
        # the weight the next iteration takes, one decay step below this one's
        decay = self.lambda_diversity / self.diversity_decay_steps if self.diversity_decay_steps > 0 else 0.0
        metrics["lambda/diversity"] = (self.diversity_now - decay).clamp(min=0.0)
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

    def exportables(self, direction: str | None) -> dict[str, Exportable]:
        """The averaged generator (image, style) -> image, mapping network (latent, domain) -> style and style
        encoder (image, domain) -> style, at the training size with a dynamic batch; style codes are unbounded."""
        self.refuse_direction(direction)
        device = self.device
        domains = torch.arange(EXAMPLE_BATCH, device=device) % self.labels.size
        images = example_images(self.image_shape, device)
        with torch.no_grad():
            style = self.mapping_ema(self.latent(EXAMPLE_BATCH, device), domains)
        names = self.labels.names
        return {
            "generator": Exportable(
                unwrapped(self.generator_ema),
                {"image": images, "style": style},
                "translated",
                {"image": BATCH, "style": BATCH, "translated": BATCH},
                output_range="unbounded (no tanh: clamp to [-1, 1])",
                # F.interpolate(scale_factor=2) with an int factor does not compile; the graph has no input-dependent branch
                scriptable=False,
            ),
            "mapping": Exportable(
                unwrapped(self.mapping_ema),
                {"latent": self.latent(EXAMPLE_BATCH, device), "domain": domains},
                "style",
                {"latent": BATCH, "domain": BATCH, "style": BATCH},
                output_range="unbounded",
                strict=True,
                labels=names,
            ),
            "style_encoder": Exportable(
                unwrapped(self.style_encoder_ema),
                {"image": images, "domain": domains},
                "style",
                {"image": BATCH, "domain": BATCH, "style": BATCH},
                output_range="unbounded",
                strict=True,
                labels=names,
            ),
        }

    def task_metrics(
        self, dataset: Dataset, count: int, generator: torch.Generator, lpips_weights: str | None
    ) -> dict[str, float]:
        """The dataset's judge of one-attribute changes (random and reference styles), where it has one;
        LPIPS diversity, given local AlexNet weights."""
        scores = {}
        if getattr(dataset, "judge_label_changes", None) is not None:
            scores |= self.judged_changes(dataset, count, generator)
        if lpips_weights is not None:
            scores["lpips_diversity"] = self.lpips_diversity(dataset, count, generator, lpips_weights)
        return scores

    def judged_changes(self, dataset: Dataset, count: int, generator: torch.Generator) -> dict[str, float]:
        """The judge of one-attribute changes, with random styles (``latent_``) and with reference styles
        (``reference_``).  The reference for translation n is the n-th held-out image of its target domain
        (cycling), so every translation gets a different one."""
        device = self.device
        changes = dataset.one_attribute_changes(count)
        images = torch.stack([dataset[item][0] for item in range(min(count, len(dataset)))])
        inputs = images[[item for item, _ in changes]]
        domains = torch.tensor([int(label) for _, label in changes])
        latents = self.latent(len(changes), device, generator)
        pool = dataset.domain_indices()
        picks = [pool[domain][n % len(pool[domain])] for n, domain in enumerate(domains.tolist())]
        style_sources = {
            "latent": lambda chunk: self.mapping_ema(latents[chunk], domains[chunk].to(device)),
            "reference": lambda chunk: self.style_encoder_ema(
                torch.stack([dataset[pick][0] for pick in picks[chunk]]).to(device), domains[chunk].to(device)
            ),
        }
        scores = {}
        for guide, styles in style_sources.items():
            outputs = []
            for start in range(0, len(changes), BATCH_SIZE):
                chunk = slice(start, start + BATCH_SIZE)
                outputs.append(self.generator_ema(inputs[chunk].to(device), styles(chunk)).float().cpu())
            judged = dataset.judge_label_changes(inputs, torch.cat(outputs), domains)
            scores |= {f"{guide}_{name}": value for name, value in judged.items()}
        return scores

    def lpips_diversity(self, dataset: Dataset, count: int, generator: torch.Generator, weights: str) -> float:
        """Mean LPIPS between two outputs of one input rendered in random styles, for every other domain."""
        device = self.device
        metric = lpips_metric(weights).to(device)
        domains = self.labels.size

        def random_style_output(images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            styles = self.mapping_ema(self.latent(len(images), device, generator), target)
            # LPIPS takes RGB images in [-1, 1]: grey ones are repeated over three channels
            return self.generator_ema(images, styles).float().clamp(-1, 1).expand(-1, 3, -1, -1)

        for images, labels in held_out_batches(dataset, count, device):
            for shift in range(1, domains):
                target = (labels + shift) % domains
                metric.update(random_style_output(images, target), random_style_output(images, target))
        return float(metric.compute())

    def compilable_networks(self) -> list[nn.Module]:
        # the discriminator is differentiated twice by R1
        return [self.generator, self.mapping, self.style_encoder]

    def get_extra_state(self) -> dict[str, int]:
        return {"iterations": self.iterations}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.iterations = int(state["iterations"])
