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

from gantrain.distributed import everywhere
from gantrain.errors import ConfigError
from gantrain.labels import LabelSpec

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]

FIXED_NOISE_SEED = 1234  # the same noise for every run, so sample grids compare across a sweep


class NonFiniteLoss(Exception):
    """A loss was NaN or infinite; raised before it reached any weights."""

    def __init__(self, names: Sequence[str], value: float, step: int | None = None):
        super().__init__(f"the {' + '.join(names)} loss is {value}")
        self.names, self.value, self.step = list(names), value, step


class Step:
    """Backward and update for named optimizers, with the run's gradient scaler.

    Recipes call ``step("discriminator", loss)`` in their own update order, or
    ``step(("generator", "mapping"), loss)`` to update several networks from one loss.
    Gradients are cleared before (nothing left by another network's update leaks in)
    and after (no memory held between updates).  A NaN or infinite loss raises
    :class:`NonFiniteLoss`, or with ``skip_non_finite`` drops that update (counted in
    ``skipped``).  That check reads the loss on the host, one device sync per update, unless
    ``defer_check``: then every optimizer must be fused Adam, which skips the update on the
    device when handed the loss's non-finite flag (``found_inf``, as ``GradScaler`` does),
    and :meth:`read_deferred` reads the flags later, at the logging cadence and before a
    checkpoint, so that the host never waits for the device in between.

    Under fp16 the one gradient scaler serves every optimizer: an overflow skips only the
    updates whose gradients overflowed, and the scale is updated once per training
    iteration (:meth:`end_iteration`), or before an optimizer steps a second time in one
    iteration (StarGAN v2's two discriminator updates), as ``GradScaler`` requires.  A
    non-finite loss under fp16 is first taken for an overflow: the scaler skips the update
    and halves the scale, until the scale is down to 1.
    """

    def __init__(
        self,
        optimizers: dict[str, torch.optim.Optimizer],
        scaler: torch.amp.GradScaler,
        skip_non_finite: bool = False,
        defer_check: bool = False,
    ):
        self.optimizers = optimizers
        self.scaler = scaler
        self.skip_non_finite = skip_non_finite
        self.defer_check = defer_check
        self.skipped = 0
        self.step_number = 0  # the training step being taken (set by the trainer), for the deferred check's report
        self.unread: list[tuple[tuple[str, ...], int, torch.Tensor, torch.Tensor]] = []  # names, step, flag, loss
        self.stepped: set[str] = set()  # optimizers stepped since the scaler's last update

    def __call__(self, names: str | Sequence[str], loss: torch.Tensor) -> None:
        names = (names,) if isinstance(names, str) else tuple(names)
        non_finite = None
        if self.defer_check:
            non_finite = (~torch.isfinite(loss.detach()).all()).float()
            self.unread.append((names, self.step_number, non_finite, loss.detach()))
        # under torchrun every process must skip (or stop) together, or the others wait for its gradients
        elif not everywhere(bool(torch.isfinite(loss.detach()).all())) and not self.may_be_overflow():
            if not self.skip_non_finite:
                raise NonFiniteLoss(names, float(loss.detach().float().sum()), self.step_number)
            self.skipped += 1
            return
        if self.stepped.intersection(names):
            self.end_iteration()
        self.stepped.update(names)
        optimizers = [self.optimizers[name] for name in names]
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        # the backward pass runs outside autocast, as the PyTorch AMP notes recommend
        with torch.autocast(loss.device.type, enabled=False):
            self.scaler.scale(loss).backward()
        for optimizer in optimizers:
            if non_finite is not None:
                optimizer.found_inf = non_finite  # fused Adam leaves weights, moments and step count as they were
            self.scaler.step(optimizer)
            optimizer.__dict__.pop("found_inf", None)
            optimizer.zero_grad(set_to_none=True)

    def read_deferred(self) -> None:
        """The deferred flags since the last read, in one device sync: count the skipped updates, or raise
        :class:`NonFiniteLoss` for the first (its update and every later non-finite one were not applied)."""
        if not self.unread:
            return
        unread, self.unread = self.unread, []
        flagged = torch.stack([flag for _, _, flag, _ in unread]).nonzero().flatten().tolist()
        if flagged and not self.skip_non_finite:
            names, step, _, loss = unread[flagged[0]]
            raise NonFiniteLoss(names, float(loss.float().sum()), step)
        self.skipped += len(flagged)

    def end_iteration(self) -> None:
        """Update the fp16 loss scale from this iteration's overflows (nothing to do in fp32 / bf16)."""
        if self.stepped:
            self.scaler.update()
            self.stepped.clear()

    def may_be_overflow(self) -> bool:
        """Under fp16, a non-finite loss (a scaled penalty gradient) is an overflow while the scale is above 1."""
        return self.scaler.is_enabled() and self.scaler.get_scale() > 1.0

    def loss_scale(self, device: torch.device) -> torch.Tensor:
        """The fp16 loss scale as a tensor on ``device`` (1 otherwise), read without a device sync.

        The gradient penalty and R1 scale the scores by it before ``autograd.grad`` and divide
        the gradients by it, so that their fp16 gradients do not underflow (the PyTorch AMP notes).
        """
        return self.scaler.scale(torch.ones((), device=device))


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
