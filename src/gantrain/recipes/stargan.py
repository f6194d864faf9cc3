"""StarGAN (Choi et al. 2018): one generator translating between many attributes or domains.

Follows yunjey/stargan: the target label is replicated over the image and fed
to the generator; the discriminator scores patches as real or fake and
classifies the image's labels.  Losses: WGAN-GP (lambda_gp 10), classification
(BCE summed over attributes, or cross-entropy over domains; lambda_cls 1) and
reconstruction L1(x, G(G(x, c_trg), c_org)) (lambda_rec 10).  An identity term
L1(x, G(x, c_org)) is optional (``lambda_identity``, 0 as in the paper): the
reconstruction loss alone is also met by a generator that applies a geometric
involution, such as mirroring the object, whatever the target.  ``ema_decay`` keeps an
exponential moving average of the generator (0, off, as in the paper) that then makes
every translation: samples, evaluation, ``gantrain-translate`` and export.  The
discriminator steps every iteration, the generator every ``n_critic``-th.  The learning rate
falls linearly to zero over the last ``n_steps_decay`` steps, as the paper says
(the reference code's decay shrinks the rate by a fraction of itself instead).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from gantrain.data.celeba import CELEBA_HAIR_COLOURS
from gantrain.errors import ConfigError
from gantrain.inference import BATCH, EXAMPLE_BATCH, IMAGE_AXES, Exportable, example_images
from gantrain.labels import LabelsConfig, label_spec
from gantrain.losses import (
    classification_loss,
    gradient_penalty,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)
from gantrain.nets.official_weights import (
    ImportRequest,
    OfficialFile,
    OfficialImport,
    Placement,
    Weights,
    stargan_discriminator_layout,
    stargan_discriminator_settings,
    stargan_generator_layout,
    stargan_generator_settings,
)
from gantrain.nets.stargan import StarGANDiscriminator, StarGANGenerator
from gantrain.options import ImageNorm
from gantrain.recipes.base import (
    MultiDomain,
    OptimizerFactory,
    frozen,
    moving_average,
    positive_critic_steps,
    unwrapped,
)
from gantrain.step import Step
from gantrain.task_metrics import held_out_batches


class StarGAN(MultiDomain):
    schedule_per_step = True
    schedule_settings = ("n_steps", "n_steps_decay")
    embedded_dataset = "shapes_attributes"
    headline_metrics = ("all_kept", "classifier_accuracy")
    official_files: ClassVar[tuple[OfficialFile, ...]] = (
        OfficialFile("G", "{step}-G.ckpt", "the generator"),
        OfficialFile("D", "{step}-D.ckpt", "the discriminator and its label classifier"),
    )
    """What the reference writes (the published CelebA models are 200000-G.ckpt and 200000-D.ckpt: download.sh)."""
    published_labels: ClassVar[dict[int, tuple[str, tuple[str, ...]]]] = {
        5: ("celeba", ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")),
        8: ("rafd", ("angry", "contemptuous", "disgusted", "fearful", "happy", "neutral", "sad", "surprised")),
    }
    """By the number of labels the generator takes: the published CelebA attributes in their order, and RaFD's
    eight expressions as its class folders sort (the reference reads RaFD with ImageFolder)."""

    def __init__(
        self,
        image_shape: Sequence[int],
        make_optimizer: OptimizerFactory,
        *,
        labels: LabelsConfig,
        ngf: int,
        ndf: int,
        n_blocks: int,
        norm: ImageNorm,
        n_layers_d: int,
        lambda_cls: float,
        lambda_rec: float,
        lambda_gp: float,
        lambda_identity: float,
        n_critic: int,
        n_steps: int,
        n_steps_decay: int,
        ema_decay: float,
    ):
        super().__init__(label_spec(labels), image_shape)
        if ImageNorm(norm) == ImageNorm.none:
            raise ConfigError(
                "StarGAN's generator normalises every layer: set model.norm=instance (the paper's) or batch."
            )
        channels, image_size = image_shape[0], image_shape[-1]
        self.generator = StarGANGenerator(self.labels.size, channels, ngf, n_blocks, ImageNorm(norm).value)
        self.discriminator = StarGANDiscriminator(self.labels.size, image_size, channels, ndf, n_layers_d)
        self.generator_ema = moving_average(self.generator, ema_decay)
        self.lambda_cls, self.lambda_rec, self.lambda_gp = lambda_cls, lambda_rec, lambda_gp
        self.lambda_identity = lambda_identity
        self.n_critic = positive_critic_steps(n_critic)
        self.discriminator_steps = 0
        self.set_optimizers(
            make_optimizer, {"generator": self.generator.parameters(), "discriminator": self.discriminator.parameters()}
        )
        self.set_linear_decay(n_steps, n_steps_decay)

    @classmethod
    def official_import(cls, weights: dict[str, Weights], request: ImportRequest) -> OfficialImport:
        """The generator and the discriminator; the labels are the published ones for their number, or
        ``labels``: CelebA attributes (multi-hot, hair colours exclusive as the reference sets them) with
        the celeba dataset, domains with any other.  The discriminator's class head fixes the image size."""
        if "G" not in weights:
            raise ConfigError("A StarGAN import needs the generator, <iterations>-G.ckpt (such as 200000-G.ckpt).")
        generator = stargan_generator_settings(weights["G"])
        model: dict[str, object] = {"ngf": generator["ngf"], "n_blocks": generator["n_blocks"]}
        channels, image_size = 3, request.image_size  # the reference's images are RGB
        notes = []
        if "D" in weights:
            found = stargan_discriminator_settings(weights["D"])
            model |= {"ndf": found["ndf"], "n_layers_d": found["n_layers"]}
            channels, image_size = found["channels"], image_size or found["image_size"]
        else:
            notes.append("Without the discriminator file (<iterations>-D.ckpt) the discriminator keeps random weights; "
                         "gantrain-translate target=<attributes> reads which attributes an input has with its "
                         "classifier, so import the D file too.")
        count = generator["inputs"] - channels
        dataset, names = cls.published_labels.get(count, (None, None))
        dataset, names = request.dataset or dataset, request.labels or names
        if dataset is None or names is None or len(names) != count:
            raise ConfigError(
                f"The generator takes {count} labels: name them in the order it was trained with, labels=[a,b,...] "
                f"({count} names), and their dataset, dataset_option=celeba for CelebA attributes or a "
                f"folder-per-domain dataset such as dataset_option=rafd."
            )
        attributes = dataset == "celeba"
        hair = [name for name in names if name in CELEBA_HAIR_COLOURS]
        labels = LabelsConfig(list(names), [hair] if attributes and len(hair) >= 2 else [], attributes)
        translators = ("generator", "generator_ema.module")  # and its average, where the run keeps one
        placements = {"G": (Placement("", translators, stargan_generator_layout),),
                      "D": (Placement("", ("discriminator",), stargan_discriminator_layout),)}
        return OfficialImport(
            dataset,
            model,
            {"channels": channels} | ({"attributes": list(names)} if attributes else {})
            | ({"image_size": image_size} if image_size else {}),
            {role: placements[role] for role in weights},
            labels=labels,
            notes=notes,
        )

    @property
    def translator(self) -> nn.Module:
        """The network that translates outside training: the averaged generator where the run keeps one."""
        return self.generator if self.generator_ema is None else self.generator_ema

    def classification_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return classification_loss(logits, labels, self.labels.multi_label)

    def plan_step(self, batch_size: int) -> bool:
        """Whether the generator steps after this discriminator step (every ``n_critic``-th); counts D steps."""
        self.discriminator_steps += 1
        return self.discriminator_steps % self.n_critic == 0

    def run_step(self, batch: Sequence[torch.Tensor], step: Step, plan: bool) -> dict[str, torch.Tensor]:
        real, labels = batch[0], batch[1]
        target_labels = self.labels.shuffled(labels)
        condition = self.labels.condition(labels)
        target_condition = self.labels.condition(target_labels)

        real_scores, real_logits = self.discriminator(real)
        with torch.no_grad():
            fake = self.generator(real, target_condition)
        fake_scores, _ = self.discriminator(fake)
        critic = wasserstein_critic_loss(real_scores, fake_scores)
        real_classification = self.lambda_cls * self.classification_loss(real_logits, labels)
        penalty = self.lambda_gp * gradient_penalty(
            lambda images: self.discriminator(images)[0], real, fake, scale=step.loss_scale(real.device)
        )
        step("discriminator", critic + real_classification + penalty)
        metrics = {
            "loss/discriminator": (critic + real_classification).detach(),
            "loss/discriminator_classification": real_classification.detach(),
            "critic/gradient_penalty": penalty.detach(),
            "critic/wasserstein_estimate": -critic.detach(),
        }

        if plan:
            fake = self.generator(real, target_condition)
            with frozen(self.discriminator):
                fake_scores, fake_logits = self.discriminator(fake)
            terms = {
                "loss/generator_adversarial": wasserstein_generator_loss(fake_scores),
                "loss/generator_classification": self.lambda_cls * self.classification_loss(fake_logits, target_labels),
                "loss/reconstruction": self.lambda_rec * F.l1_loss(self.generator(fake, condition), real),
            }
            if self.lambda_identity > 0:
                terms["loss/identity"] = self.lambda_identity * F.l1_loss(self.generator(real, condition), real)
            total = sum(terms.values())
            step("generator", total)
            metrics |= {name: value.detach() for name, value in terms.items()}
            metrics["loss/generator"] = total.detach()
            if self.generator_ema is not None:
                self.generator_ema.update_parameters(self.generator)
        return metrics

    @torch.no_grad()
    def estimate_labels(self, images: torch.Tensor) -> torch.Tensor:
        """The labels the discriminator's classifier reads from ``images`` (the input of a named translation)."""
        _, logits = self.discriminator(images)
        return (logits > 0).float() if self.labels.multi_label else logits.argmax(1)

    def translate_named(
        self,
        images: torch.Tensor,
        target: Sequence[str],
        references: torch.Tensor | None = None,
        num_styles: int = 1,
    ) -> torch.Tensor:
        """N x 1 x C x H x W: the named labels applied to what the classifier sees in each image."""
        wanted = self.labels.named_target(target, self.estimate_labels(images))
        return self.translator(images, self.labels.condition(wanted)).unsqueeze(1)

    def visuals(self, batch: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per row: the input, then the input with one label changed per label name."""
        real, labels = batch[0], batch[1]
        columns = [
            self.translator(real, self.labels.condition(t)) for t in self.labels.one_change_targets(labels)
        ]
        return {"translations": torch.stack([real, *columns], 1)}

    def real_visuals(self, batch: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"real": batch[0]}

    def generated_and_real(
        self, batch: Sequence[torch.Tensor], generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each image translated to the labels of another image of the batch, as in training."""
        real, labels = batch[0], batch[1]
        targets = labels[torch.randperm(labels.size(0), generator=generator).to(labels.device)]
        return self.translator(real, self.labels.condition(targets)), real

    def compilable_networks(self) -> list[nn.Module]:
        return [self.generator]  # the discriminator is differentiated twice by the gradient penalty

    def exportables(self, direction: str | None) -> dict[str, Exportable]:
        """(image, condition vector) -> image, with dynamic batch and sides (multiples of 4)."""
        self.refuse_direction(direction)
        condition = torch.eye(EXAMPLE_BATCH, self.labels.size, device=self.device)
        return {
            "generator": Exportable(
                unwrapped(self.translator),
                {"image": example_images(self.image_shape, self.device), "condition": condition},
                "translated",
                {"image": IMAGE_AXES, "condition": BATCH, "translated": IMAGE_AXES},
                size_multiple=4,  # two stride-2 convolutions, undone by two transposed ones
                labels=self.labels.names,
            )
        }

    def task_metrics(
        self, dataset: Dataset, count: int, generator: torch.Generator, lpips_weights: str | None
    ) -> dict[str, float]:
        """Classifier accuracy on one-change translations; the dataset's judge of them where it has one.

        Each held-out image is translated to every target of ``labels.one_change_targets``;
        the judge takes those that change a label (switching on the colour or shape an
        image already has changes nothing).
        """
        spec = self.labels
        judge = getattr(dataset, "judge_label_changes", None)
        matches, inputs, outputs, targets = [], [], [], []
        for images, labels in held_out_batches(dataset, count, self.device):
            for target in spec.one_change_targets(labels):
                translated = self.translator(images, spec.condition(target))
                matches.append((self.estimate_labels(translated) == target).flatten().cpu())
                if judge is not None:
                    changed = (target != labels).reshape(len(labels), -1).any(1)
                    inputs.append(images[changed].cpu())
                    outputs.append(translated[changed].float().cpu())
                    targets.append(target[changed].cpu())
        scores = {"classifier_accuracy": float(torch.cat(matches).float().mean())}
        if judge is not None:
            scores |= judge(torch.cat(inputs), torch.cat(outputs), torch.cat(targets))
        return scores

    def get_extra_state(self) -> dict[str, int]:
        return {"discriminator_steps": self.discriminator_steps}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.discriminator_steps = int(state["discriminator_steps"])
