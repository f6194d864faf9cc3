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
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gantrain.labels import LabelSpec, label_spec
from gantrain.losses import gradient_penalty, wasserstein_critic_loss, wasserstein_generator_loss
from gantrain.nets.stargan import StarGANDiscriminator, StarGANGenerator
from gantrain.recipes.base import (
    MultiDomain,
    OptimizerFactory,
    constant_then_linear_decay,
    frozen,
    generator_average,
    positive_critic_steps,
)
from gantrain.step import Step


class StarGAN(MultiDomain):
    schedule_per_step = True

    def __init__(
        self,
        image_shape: Sequence[int],
        make_optimizer: OptimizerFactory,
        labels: dict[str, Any],
        ngf: int = 64,
        ndf: int = 64,
        n_blocks: int = 6,
        norm: str = "instance",
        d_layers: int = 6,
        lambda_cls: float = 1.0,
        lambda_rec: float = 10.0,
        lambda_gp: float = 10.0,
        lambda_identity: float = 0.0,
        n_critic: int = 5,
        n_steps: int = 100000,
        n_steps_decay: int = 100000,
        ema_decay: float = 0.0,
    ):
        super().__init__(label_spec(**labels), image_shape)
        channels, image_size = image_shape[0], image_shape[-1]
        self.generator = StarGANGenerator(self.labels.size, channels, ngf, n_blocks, norm)
        self.discriminator = StarGANDiscriminator(self.labels.size, image_size, channels, ndf, d_layers)
        self.generator_ema = generator_average(self.generator, ema_decay)
        self.lambda_cls, self.lambda_rec, self.lambda_gp = lambda_cls, lambda_rec, lambda_gp
        self.lambda_identity = lambda_identity
        self.n_critic = positive_critic_steps(n_critic)
        self.discriminator_steps = 0
        self._optimizers = {
            "generator": make_optimizer(self.generator.parameters()),
            "discriminator": make_optimizer(self.discriminator.parameters()),
        }
        self._schedulers = {
            name: constant_then_linear_decay(optimizer, n_steps, n_steps_decay)
            for name, optimizer in self._optimizers.items()
        }

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._optimizers

    @property
    def translator(self) -> nn.Module:
        """The network that translates outside training: the averaged generator where the run keeps one."""
        return self.generator if self.generator_ema is None else self.generator_ema

    def schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        return self._schedulers

    def classification_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return classification_loss(logits, labels, self.labels)

    def train_step(self, batch: Sequence[torch.Tensor], step: Step) -> dict[str, torch.Tensor]:
        real, labels = batch[0], batch[1]
        target_labels = self.labels.shuffled(labels)
        condition = self.labels.condition(labels)
        target_condition = self.labels.condition(target_labels)

        real_scores, real_logits = self.discriminator(real)
        with torch.no_grad():
            fake = self.generator(real, target_condition)
        fake_scores, _ = self.discriminator(fake)
        critic = wasserstein_critic_loss(real_scores, fake_scores)
        real_classification = self.classification_loss(real_logits, labels)
        penalty = gradient_penalty(
            lambda images: self.discriminator(images)[0], real, fake, scale=step.loss_scale(real.device)
        )
        step("discriminator", critic + self.lambda_cls * real_classification + self.lambda_gp * penalty)
        self.discriminator_steps += 1
        metrics = {
            "loss/discriminator": critic.detach(),
            "loss/discriminator_classification": real_classification.detach(),
            "critic/gradient_penalty": penalty.detach(),
            "critic/wasserstein_estimate": -critic.detach(),
        }

        if self.discriminator_steps % self.n_critic == 0:
            fake = self.generator(real, target_condition)
            with frozen(self.discriminator):
                fake_scores, fake_logits = self.discriminator(fake)
            adversarial = wasserstein_generator_loss(fake_scores)
            fake_classification = self.classification_loss(fake_logits, target_labels)
            reconstruction = F.l1_loss(self.generator(fake, condition), real)
            total = adversarial + self.lambda_cls * fake_classification + self.lambda_rec * reconstruction
            metrics |= {
                "loss/generator": adversarial.detach(),
                "loss/generator_classification": fake_classification.detach(),
                "loss/reconstruction": reconstruction.detach(),
            }
            if self.lambda_identity > 0:
                identity = F.l1_loss(self.generator(real, condition), real)
                total = total + self.lambda_identity * identity
                metrics["loss/identity"] = identity.detach()
            step("generator", total)
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

    def get_extra_state(self) -> dict[str, int]:
        return {"discriminator_steps": self.discriminator_steps}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.discriminator_steps = int(state["discriminator_steps"])


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, spec: LabelSpec) -> torch.Tensor:
    """BCE summed over attributes and averaged over images, or cross-entropy over domains."""
    if spec.multi_label:
        return F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="sum") / logits.size(0)
    return F.cross_entropy(logits, labels.long())
