"""The contract between the trainer and a GAN family.

A recipe is an ``nn.Module`` whose submodules are its networks (so ``state_dict``
covers them) and which owns one optimizer per network group.  The trainer calls
``train_step`` once per batch and ``visuals`` at the sampling cadence; everything
else (device, precision, logging, checkpoints, resume) is the trainer's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import Dataset

from gantrain.errors import ConfigError
from gantrain.labels import LabelSpec
from gantrain.step import Step

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]

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


def warmed_up_ema(decay: float) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """Exponential moving average whose decay ramps up as min(decay, (1 + n) / (10 + n)).

    A fixed decay of 0.999 would keep a fifth of the random initial weights after
    1,500 updates; the ramp lets the average follow the early, fast-moving weights.
    """

    def average(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        if not averaged.is_floating_point():  # BatchNorm's step counter
            return current
        weight = ((1.0 + num_averaged) / (10.0 + num_averaged)).clamp(max=decay)  # a tensor: no device sync
        return torch.lerp(current, averaged, weight.to(averaged.dtype))

    return average


def generator_average(generator: nn.Module, decay: float) -> AveragedModel | None:
    """A warmed-up moving average of ``generator``'s weights and buffers (BatchNorm statistics), or None at decay 0."""
    if decay <= 0:
        return None
    return AveragedModel(generator, avg_fn=warmed_up_ema(decay), use_buffers=True).requires_grad_(False)


class Recipe(nn.Module):
    """Base class of every GAN family."""

    schedule_per_step = False
    """Whether ``schedulers`` count training steps (StarGAN) rather than epochs (CycleGAN)."""

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        """Learning-rate schedules, stepped by the trainer once per epoch (or step)."""
        return {}

    def training_data(self, dataset: Dataset, seed: int | None = None) -> Dataset:
        """The dataset as this recipe's batches need it (StarGAN v2 adds reference images).

        ``seed`` fixes any extra random draws, for the fixed sample batch; without it
        they come from the global RNG, which checkpoints keep.
        """
        return dataset

    def train_step(self, batch: Any, step: Step) -> dict[str, torch.Tensor]:
        """One update on a batch as the dataset collates it; returns detached scalars to log.

        Only what this step computed is returned (a WGAN critic step has no generator loss).
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

    def generated_and_real(self, batch: Any, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """For FID / KID: images this model makes from a held-out batch, and the real images to compare
        them with.  Random choices (noise, target labels, styles) come from ``generator`` (on the CPU)."""
        raise NotImplementedError


class ImageToImage(Recipe):
    """Translation families: ``translate`` maps images of one domain to the other.

    They train with one optimizer per group of networks and the reference's
    schedule, constant for ``n_epochs`` then decaying over ``n_epochs_decay``.
    """

    def set_optimization(
        self,
        make_optimizer: OptimizerFactory,
        groups: dict[str, Iterable[nn.Parameter]],
        n_epochs: int,
        n_epochs_decay: int,
    ) -> None:
        self._optimizers = {name: make_optimizer(parameters) for name, parameters in groups.items()}
        self._schedulers = {
            name: constant_then_linear_decay(optimizer, n_epochs, n_epochs_decay)
            for name, optimizer in self._optimizers.items()
        }

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._optimizers

    def schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        return self._schedulers

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

    def generated_and_real(
        self, batch: dict[str, torch.Tensor], generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        source, target = ("A", "B") if self.evaluation_direction == "AtoB" else ("B", "A")
        return self.translate(batch[source], self.evaluation_direction), batch[target]


class MultiDomain(Recipe):
    """Families that translate images to named target attributes or domains (StarGAN, StarGAN v2).

    Their networks work at the training ``image_size``; other sizes are resized to it.
    """

    uses_references = False
    """Whether ``translate_named`` can take the style of reference images (StarGAN v2)."""

    def __init__(self, labels: LabelSpec, image_shape: Sequence[int]):
        super().__init__()
        self.labels = labels
        self.image_size = int(image_shape[-1])

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


class NoiseToImage(Recipe):
    """Unconditional families: a generator from noise and a discriminator (or critic)."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        nz: int,
        make_optimizer: OptimizerFactory,
        ema_decay: float = 0.0,
    ):
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator
        self.nz = nz
        self._optimizers = {
            "generator": make_optimizer(generator.parameters()),
            "discriminator": make_optimizer(discriminator.parameters()),
        }
        self.generator_ema = generator_average(generator, ema_decay)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._optimizers

    def noise(
        self, count: int, device: torch.device, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if generator is None:
            return torch.randn(count, self.nz, device=device)
        return torch.randn(count, self.nz, generator=generator).to(device)

    def update_ema(self) -> None:
        """Call after every generator update."""
        if self.generator_ema is not None:
            self.generator_ema.update_parameters(self.generator)

    @torch.no_grad()
    def sample(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Images from the averaged generator when there is one, else from the trained one."""
        device = next(self.generator.parameters()).device
        network = self.generator if self.generator_ema is None else self.generator_ema
        return network(self.noise(count, device, generator))

    def visuals(self, batch: Any) -> dict[str, torch.Tensor]:
        fixed = torch.Generator().manual_seed(FIXED_NOISE_SEED)
        return {"samples": self.sample(batch[0].size(0), fixed)}

    def real_visuals(self, batch: Any) -> dict[str, torch.Tensor]:
        return {"real": batch[0]}

    def compilable_networks(self) -> list[nn.Module]:
        return [self.generator, self.discriminator]

    def generated_and_real(self, batch: Any, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sample(batch[0].size(0), generator), batch[0]


def constant_then_linear_decay(
    optimizer: torch.optim.Optimizer, constant_epochs: int, decay_epochs: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """The pix2pix/CycleGAN schedule: the initial rate for ``constant_epochs``, then a linear fall.

    Epoch e (from 0) trains at 1 - max(0, e + 1 - constant) / (decay + 1) times the
    initial rate, as the reference code does: 1/101 of it in the last of 100 + 100 epochs.
    """

    def factor(epoch: int) -> float:
        return 1.0 - max(0, epoch + 1 - constant_epochs) / float(decay_epochs + 1)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
