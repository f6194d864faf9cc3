"""The contract between a GAN family and everything around it.

A recipe is an ``nn.Module`` whose submodules are its networks (so ``state_dict``
covers them) and which owns one optimizer per network group.  The trainer calls
``train_step`` once per batch and ``visuals`` at the sampling cadence; everything
else (device, precision, logging, checkpoints, resume) is the trainer's.

The commands around training never ask which family they hold: they ask the recipe.
``accepts`` says whether a dataset's items fit, ``inference_model`` which kind of
model ``gantrain.load`` and the inference commands make of it, ``exportables`` which
networks ``gantrain-export`` can write, ``task_metrics`` what to score on held-out data
and ``sample_quality`` what to log beside the sample grids.  The three kinds below
(:class:`NoiseToImage`, :class:`ImageToImage`, :class:`MultiDomain`) answer most of
these for their families.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import Dataset

from gantrain.data import samples_judge
from gantrain.errors import ConfigError
from gantrain.inference import (
    BATCH,
    EXAMPLE_BATCH,
    IMAGE_AXES,
    Exportable,
    LabelTranslationModel,
    NoiseModel,
    TrainedModel,
    TranslationModel,
    example_images,
)
from gantrain.labels import LabelSpec
from gantrain.losses import gradient_penalty, halved_discriminator_loss
from gantrain.metrics import mean_pairwise_distance
from gantrain.options import AdversarialLoss
from gantrain.step import Step
from gantrain.task_metrics import SAMPLE_BATCH_SIZE

OptimizerFactory = Callable[..., torch.optim.Optimizer]
"""The configured optimizer, partially applied: call it with parameters (and overrides such as ``lr=``)."""
ParameterGroup = Iterable[nn.Parameter] | tuple[Iterable[nn.Parameter], dict[str, Any]]
"""Parameters of one optimizer, optionally with overrides of the configured optimizer's settings."""

FIXED_NOISE_SEED = 1234  # the same noise for every run, so sample grids compare across a sweep


def positive_critic_steps(n_critic: int) -> int:
    """``model.n_critic``, the discriminator steps per generator step, checked at start-up."""
    if n_critic < 1:
        raise ConfigError(
            f"model.n_critic={n_critic}: the generator steps once every n_critic discriminator steps, "
            f"so it must be at least 1 (the papers use 5)."
        )
    return n_critic


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Forward through ``module`` without recording gradients for its parameters.

    Used for the generator's update: D's gradients would be wasted work.
    """
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for parameter, flag in zip(module.parameters(), flags):
            parameter.requires_grad_(flag)


class MovingAverage(AveragedModel):
    """An exponential moving average of a network's weights and buffers (BatchNorm statistics).

    ``torch.optim.swa_utils.AveragedModel`` with an update that never waits for the device
    (the stock one reads its update count on the host), so that it runs inside a captured CUDA
    graph too.  The first update copies the network; update n >= 1 keeps ``weight(n)`` of the
    average: min(decay, (1 + n) / (10 + n)) with ``warm_up``, else ``decay``.  A fixed decay of
    0.999 would keep a fifth of the random initial weights after 1,500 updates; the ramp lets
    the average follow the early, fast-moving weights.  Integer buffers (BatchNorm's step
    counter) are copied.  The state dict is ``AveragedModel``'s.
    """

    def __init__(self, network: nn.Module, decay: float, warm_up: bool):
        super().__init__(network, use_buffers=True)
        self.decay, self.warm_up = decay, warm_up
        self.requires_grad_(False)

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        pairs = list(zip([*self.module.parameters(), *self.module.buffers()], [*model.parameters(), *model.buffers()],
                         strict=True))
        averaged = [kept for kept, _ in pairs if kept.is_floating_point()]
        current = [new.detach() for kept, new in pairs if kept.is_floating_point()]
        n = self.n_averaged.to(averaged[0].device, torch.float32)
        weight = ((1.0 + n) / (10.0 + n)).clamp(max=self.decay) if self.warm_up else torch.full_like(n, self.decay)
        weight = torch.where(n == 0, torch.zeros_like(weight), weight)  # the first update copies
        # new - weight (new - kept), written out: _foreach_lerp_ would read a tensor weight back to the host,
        # which a captured CUDA graph cannot
        steps = torch._foreach_sub(current, averaged)
        torch._foreach_mul_(steps, weight)
        torch._foreach_copy_(averaged, current)
        torch._foreach_sub_(averaged, steps)
        for kept, new in pairs:
            if not kept.is_floating_point():
                kept.copy_(new)
        self.n_averaged.add_(1)


def moving_average(network: nn.Module, decay: float, warm_up: bool = True) -> MovingAverage | None:
    """A :class:`MovingAverage` of ``network``, or None at decay 0.  Call ``update_parameters(network)``
    after each of its updates.  ``warm_up`` ramps the decay up from the first updates; without it the
    decay is fixed from the start, as StarGAN v2's reference averages."""
    if decay <= 0:
        return None
    return MovingAverage(network, decay, warm_up)


def batch_size(batch: Any) -> int:
    """The number of items in a collated batch (a tensor, or a list / tuple / dict of them)."""
    if isinstance(batch, torch.Tensor):
        return batch.size(0)
    first = next(iter(batch.values())) if isinstance(batch, dict) else batch[0]
    return batch_size(first)


def gaussian(count: int, size: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
    """``count`` x ``size`` draws of N(0, I): from ``generator`` (on the CPU) when given, else from the global RNG."""
    if generator is None:
        return torch.randn(count, size, device=device)
    return torch.randn(count, size, generator=generator).to(device)


def constant_then_linear_decay(
    optimizer: torch.optim.Optimizer, constant_epochs: int, decay_epochs: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """The initial rate for ``constant_epochs`` epochs (or steps), then a linear fall towards zero.

    Epoch e (from 0) trains at 1 - max(0, e + 1 - constant) / (decay + 1) times the
    initial rate, as the pix2pix/CycleGAN reference does: 1/101 of it in the last of 100 + 100 epochs.
    """

    def factor(epoch: int) -> float:
        return 1.0 - max(0, epoch + 1 - constant_epochs) / float(decay_epochs + 1)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def as_if_scheduled_from_the_start(scheduler: torch.optim.lr_scheduler.LambdaLR, steps: int) -> None:
    """Put a schedule, and its optimizer's rate, where ``steps`` scheduler steps from the start would have.

    For a resumed run given a schedule its checkpoint lacks (WGAN's ``model.n_steps_decay``).
    """
    rates = [base * factor(steps) for base, factor in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    scheduler.load_state_dict({**scheduler.state_dict(), "last_epoch": steps, "_step_count": steps + 1, "_last_lr": rates})
    for group, base, rate in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, rates):
        group.update(initial_lr=base, lr=rate)


class Recipe(nn.Module):
    """Base class of every GAN family."""

    schedule_per_step: ClassVar[bool] = False
    """Whether ``schedulers`` count training steps (StarGAN) rather than epochs (CycleGAN)."""
    inference_model: ClassVar[type[TrainedModel]] = TrainedModel
    """What ``gantrain.load`` and the inference commands make of a trained recipe."""
    embedded_dataset: ClassVar[str] = "shapes"
    """The ``dataset=`` option, generated by gantrain itself, that this family learns from without downloads."""
    headline_metrics: ClassVar[tuple[str, ...]] = ()
    """The task metrics that summarise a run on the embedded dataset, in the run summary and benchmarks."""
    schedule_settings: ClassVar[tuple[str, ...]] = ()
    """``model.*`` settings that set the length of the learning-rate schedule: a resumed run may change them."""
    settings_added_later: ClassVar[dict[str, Any]] = {}
    """``model.*`` settings added after runs were stored, each with the value those runs trained with, so
    that their stored configs still load."""
    supports_cuda_graphs: ClassVar[bool] = True
    """Whether ``run_step`` can be captured in a CUDA graph (device work only; see :meth:`plan_step`)."""
    data_needs: ClassVar[str] = ""
    """What the dataset's items must be (for the error when a dataset does not provide them) ..."""
    example_datasets: ClassVar[str] = ""
    """... and ``dataset=`` options that do."""

    def __init__(self, image_shape: Sequence[int]):
        super().__init__()
        self.image_shape = tuple(int(side) for side in image_shape)
        self._optimizers: dict[str, torch.optim.Optimizer] = {}
        self._schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}

    # -- construction: every family builds its optimizers and schedules here ----------------------
    def set_optimizers(self, make_optimizer: OptimizerFactory, groups: dict[str, ParameterGroup]) -> None:
        """One configured optimizer per named group of parameters, in update order."""
        for name, group in groups.items():
            parameters, overrides = group if isinstance(group, tuple) else (group, {})
            self._optimizers[name] = make_optimizer(parameters, **overrides)

    def set_linear_decay(self, constant: int, decay: int) -> None:
        """Every optimizer at its initial rate for ``constant`` epochs (steps), then decaying over ``decay``."""
        self._schedulers = {
            name: constant_then_linear_decay(optimizer, constant, decay) for name, optimizer in self._optimizers.items()
        }

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._optimizers

    def schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        """Learning-rate schedules, stepped by the trainer once per epoch (or step)."""
        return self._schedulers

    # -- training ----------------------------------------------------------------------------------
    def accepts(self, dataset: Dataset) -> bool:
        """Whether the dataset's items are what ``train_step`` takes."""
        return True

    def training_data(self, dataset: Dataset, seed: int | None = None) -> Dataset:
        """The dataset as this recipe's batches need it (StarGAN v2 adds reference images).

        ``seed`` fixes any extra random draws, for the fixed sample batch; without it
        they come from the global RNG, which checkpoints keep.
        """
        return dataset

    def train_step(self, batch: Any, step: Step) -> dict[str, torch.Tensor]:
        """One training step on a batch as the dataset collates it: :meth:`plan_step`, then :meth:`run_step`."""
        return self.run_step(batch, step, self.plan_step(batch_size(batch)))

    def plan_step(self, batch_size: int) -> Hashable:
        """The host's part of the next step, before any device work: advance the schedule's counters, draw
        the random choices made on the host (and stage them on the device), and return which updates the
        step takes (WGAN: critic only, or critic then generator).  ``run_step`` reads only device state and
        this plan, so that the trainer can capture each plan's ``run_step`` once in a CUDA graph and replay it.
        """
        return None

    def run_step(self, batch: Any, step: Step, plan: Hashable) -> dict[str, torch.Tensor]:
        """The step's updates, in the family's order, as ``plan`` says; returns detached scalars to log.

        Only what this step computed is returned (a WGAN critic step has no generator loss).
        ``loss/generator`` and ``loss/discriminator`` mean the same in every family (docs/models.md).
        No host sync, no host-side random draw and no host-side state change here: all of that
        belongs in :meth:`plan_step`.
        """
        raise NotImplementedError

    def visuals(self, batch: Any) -> dict[str, torch.Tensor]:
        """Named images in [-1, 1] for the sample grids, from a fixed batch of data.

        A 4-D batch is laid out 8 to a row; a 5-D one (N x K x C x H x W) one input per row.
        """
        raise NotImplementedError

    def real_visuals(self, batch: Any) -> dict[str, torch.Tensor]:
        """The fixed batch itself, shown once at step 0."""
        return {}

    def sample_quality(self, visuals: dict[str, torch.Tensor], dataset: Dataset) -> dict[str, float]:
        """Scores of the sample grids, logged as ``quality/<name>`` at every sample step."""
        return {}

    def compilable_networks(self) -> list[nn.Module]:
        """Networks that ``torch.compile`` may wrap (those never differentiated twice)."""
        return []

    def trained_networks(self) -> dict[str, nn.Module]:
        """The submodules that the optimizers update, by attribute name; DDP wraps each one separately."""
        trained = {
            id(parameter)
            for optimizer in self.optimizers().values()
            for group in optimizer.param_groups
            for parameter in group["params"]
        }
        return {
            name: module
            for name, module in self.named_children()
            if any(id(parameter) in trained for parameter in module.parameters())
        }

    # -- after training ----------------------------------------------------------------------------
    def exportables(self, direction: str | None) -> dict[str, Exportable]:
        """The networks ``gantrain-export`` can write (``part=``), in eval mode, with example inputs."""
        raise NotImplementedError

    def task_metrics(
        self, dataset: Dataset, count: int, generator: torch.Generator, lpips_weights: str | None
    ) -> dict[str, float]:
        """Weight-free held-out scores (see :func:`gantrain.task_metrics.task_metrics`); ``{}`` when none apply."""
        return {}

    def generated_and_real(self, batch: Any, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """For FID / KID: images this model makes from a held-out batch, and the real images to compare
        them with.  Random choices (noise, target labels, styles) come from ``generator`` (on the CPU)."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def refuse_direction(self, direction: str | None) -> None:
        if direction is not None:
            raise ConfigError("direction= is for models that translate between two domains; this one has one generator.")


class NoiseToImage(Recipe):
    """Unconditional families: a generator from noise and a discriminator (or critic).

    Subclasses give the networks and the game (``train_step``); sampling, the averaged
    generator, the sample-quality scores, export and the held-out judge are shared.
    """

    inference_model = NoiseModel
    embedded_dataset = "shapes"
    headline_metrics = ("valid_share", "coverage")
    data_needs = "single images"
    example_datasets = "shapes, mnist, folder"

    def __init__(
        self,
        image_shape: Sequence[int],
        make_optimizer: OptimizerFactory,
        generator: nn.Module,
        discriminator: nn.Module,
        nz: int,
        ema_decay: float,
        rates: dict[str, float | None] | None = None,
    ):
        """``rates``: a learning rate for "generator" or "discriminator" other than the optimizer's."""
        super().__init__(image_shape)
        self.generator = generator
        self.discriminator = discriminator
        self.nz = nz
        rates = rates or {}
        networks = {"generator": generator, "discriminator": discriminator}
        self.set_optimizers(make_optimizer, {
            name: (network.parameters(), {} if rates.get(name) is None else {"lr": rates[name]})
            for name, network in networks.items()
        })
        self.generator_ema = moving_average(generator, ema_decay)

    def accepts(self, dataset: Dataset) -> bool:
        return not isinstance(dataset[0], dict)

    def noise(self, count: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
        return gaussian(count, self.nz, device, generator)

    def update_ema(self) -> None:
        """Call after every generator update."""
        if self.generator_ema is not None:
            self.generator_ema.update_parameters(self.generator)

    @property
    def sampler(self) -> nn.Module:
        """The generator that samples outside training: the averaged one where the run keeps one."""
        return self.generator if self.generator_ema is None else self.generator_ema

    @torch.no_grad()
    def sample(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.sampler(self.noise(count, self.device, generator))

    def visuals(self, batch: Any) -> dict[str, torch.Tensor]:
        fixed = torch.Generator().manual_seed(FIXED_NOISE_SEED)
        return {"samples": self.sample(batch[0].size(0), fixed)}

    def real_visuals(self, batch: Any) -> dict[str, torch.Tensor]:
        return {"real": batch[0]}

    def sample_quality(self, visuals: dict[str, torch.Tensor], dataset: Dataset) -> dict[str, float]:
        """A falling ``sample_diversity`` is the first sign of mode collapse; the dataset's judge where it has one."""
        samples = visuals["samples"].float()
        quality = {"sample_diversity": mean_pairwise_distance(samples)}
        judge = samples_judge(dataset)
        if judge is not None:
            quality |= judge(samples)
        return quality

    def compilable_networks(self) -> list[nn.Module]:
        return [self.generator, self.discriminator]

    def exportables(self, direction: str | None) -> dict[str, Exportable]:
        self.refuse_direction(direction)
        noise = self.noise(EXAMPLE_BATCH, self.device)
        return {"generator": Exportable(unwrapped(self.sampler), {"noise": noise}, "image",
                                        {"noise": BATCH, "image": BATCH})}

    def task_metrics(
        self, dataset: Dataset, count: int, generator: torch.Generator, lpips_weights: str | None
    ) -> dict[str, float]:
        """The dataset's judge of ``count`` samples, drawn as ``gantrain-sample`` draws them."""
        judge = samples_judge(dataset)
        if judge is None:
            return {}
        images = [
            self.sample(min(SAMPLE_BATCH_SIZE, count - start), generator).float().cpu()
            for start in range(0, count, SAMPLE_BATCH_SIZE)
        ]
        return judge(torch.cat(images))

    def generated_and_real(self, batch: Any, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sample(batch[0].size(0), generator), batch[0]


class ImageToImage(Recipe):
    """Translation families: ``translate`` maps images of one domain to the other (A/B pairs of images).

    Subclasses set ``gan_loss`` (an :class:`~gantrain.options.AdversarialLoss`) and ``lambda_gp``.
    """

    gan_loss: AdversarialLoss
    lambda_gp: float
    schedule_settings = ("n_epochs", "n_epochs_decay")

    inference_model = TranslationModel
    data_needs = "A/B image pairs"
    example_datasets = "shapes_unpaired, shapes_paired, horse2zebra, facades"

    def accepts(self, dataset: Dataset) -> bool:
        return isinstance(dataset[0], dict)

    def translate(self, images: torch.Tensor, direction: str) -> torch.Tensor:
        """``direction`` is "AtoB" or "BtoA"; sides must be multiples of ``size_multiple``."""
        raise NotImplementedError

    @property
    def size_multiple(self) -> int:
        """What the generator's strided layers need the image sides to be multiples of."""
        raise NotImplementedError

    @property
    def evaluation_direction(self) -> str:
        """The direction FID measures: the one the model was trained for (A -> B for CycleGAN)."""
        return "AtoB"

    def discriminator_losses(
        self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, step: Step
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The halved adversarial loss of ``discriminator`` (``model.gan_loss``), and with ``wgangp`` the
        weighted gradient penalty that joins it in the update (None otherwise)."""
        adversarial = halved_discriminator_loss(discriminator, real, fake, self.gan_loss)
        if self.gan_loss != AdversarialLoss.wgangp:
            return adversarial, None
        return adversarial, self.lambda_gp * gradient_penalty(
            discriminator, real, fake, scale=step.loss_scale(real.device)
        )

    def translation_exportable(self, network: nn.Module, direction: str, dynamic_sides: bool) -> Exportable:
        """A generator taking images of the training size (or, with ``dynamic_sides``, any multiple of
        ``size_multiple``) with a dynamic batch."""
        axes = IMAGE_AXES if dynamic_sides else BATCH
        return Exportable(
            network,
            {"image": example_images(self.image_shape, self.device)},
            "translated",
            {"image": axes, "translated": axes},
            size_multiple=self.size_multiple if dynamic_sides else 1,
            direction=direction,
        )

    def generated_and_real(
        self, batch: dict[str, torch.Tensor], generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        source, target = ("A", "B") if self.evaluation_direction == "AtoB" else ("B", "A")
        return self.translate(batch[source], self.evaluation_direction), batch[target]


class MultiDomain(Recipe):
    """Families that translate images to named target attributes or domains (StarGAN, StarGAN v2).

    Their networks work at the training ``image_size``; other sizes are resized to it.
    """

    inference_model = LabelTranslationModel
    data_needs = "images labelled with attributes or domains"
    example_datasets = "celeba (with dataset.attributes), afhq, domains, shapes_attributes, shapes_domains"
    uses_references: ClassVar[bool] = False
    """Whether ``translate_named`` can take the style of reference images (StarGAN v2)."""

    def __init__(self, labels: LabelSpec, image_shape: Sequence[int]):
        super().__init__(image_shape)
        self.labels = labels
        self.image_size = int(image_shape[-1])

    def accepts(self, dataset: Dataset) -> bool:
        return not isinstance(dataset[0], dict)

    def translate_named(
        self,
        images: torch.Tensor,
        target: Sequence[str],
        references: torch.Tensor | None = None,
        num_styles: int = 1,
    ) -> torch.Tensor:
        """N x K x C x H x W translations of ``image_size`` images to the ``target`` names.

        K is 1, or the number of ``references`` whose style is copied, or ``num_styles``
        random styles; only families with ``uses_references`` take the last two.
        """
        raise NotImplementedError


def unwrapped(network: nn.Module) -> nn.Module:
    """The network inside an exponential moving average wrapper, which exports as that network."""
    return network.module if isinstance(network, AveragedModel) else network
