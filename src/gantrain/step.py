"""``Step``: backward and update of named optimizers, the one piece of training plumbing a recipe calls.

Recipes keep the order of their updates (CycleGAN: generators then discriminators;
WGAN: ``n_critic`` critic steps per generator step; StarGAN v2: two of each) and hand
each loss to ``step(names, loss)``, which does the rest the same way for every family:
gradient scaling under fp16, clearing gradients, and refusing a NaN or infinite loss.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from gantrain.distributed import everywhere
from gantrain.errors import ConfigError
from gantrain.options import NonFiniteCheck


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
    and the flags are counted on the device (:class:`DeviceFlags`, also inside a captured CUDA
    graph); :meth:`read_deferred` reads them at the logging cadence and before a checkpoint,
    so that the host never waits for the device in between.

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
        self.step_number = 0  # the training step being taken, for the reports (set by begin_step)
        self.flags: DeviceFlags | None = None  # the deferred checks' record, on the device of the first loss
        self.stepped: set[str] = set()  # optimizers stepped since the scaler's last update
        # each network's gradient norm (unscaled) of its latest recorded update, on the device until read
        self.grad_norms: dict[str, torch.Tensor] = {}
        self.record_norms = True  # whether this step's updates measure their gradient norms (set by begin_step)
        self.read_norms: set[str] = set()  # networks whose recorded norm has been read since their last update

    def begin_step(self, number: int, record_norms: bool = True) -> None:
        """The training step about to be taken, for the report of a non-finite loss (no device sync).

        ``record_norms=False`` skips the gradient norms of its updates, except a network's first update
        since the norms were last read (:meth:`read_grad_norms`): the trainer records them on the steps it
        logs, since a norm costs a pass over every gradient (about 4% of an MLP GAN step), and a network
        that does not update on a logged step (WGAN's generator) still shows a recent one.
        """
        self.step_number = number
        self.record_norms = record_norms
        if self.flags is not None:
            self.flags.step.fill_(number)

    def __call__(self, names: str | Sequence[str], loss: torch.Tensor) -> None:
        names = (names,) if isinstance(names, str) else tuple(names)
        non_finite = None
        if self.defer_check:
            if self.flags is None:
                self.flags = DeviceFlags(loss.device, self.step_number)
            non_finite = self.flags.record(names, loss.detach())
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
        for name, optimizer in zip(names, optimizers, strict=True):
            if self.record_norms or name not in self.grad_norms or name in self.read_norms:
                self.grad_norms[name] = self.gradient_norm(optimizer, loss.device)
                self.read_norms.discard(name)
        for optimizer in optimizers:
            if non_finite is not None and optimizer.defaults.get("fused"):
                optimizer.found_inf = non_finite  # fused Adam leaves weights, moments and step count as they were
            self.scaler.step(optimizer)
            optimizer.__dict__.pop("found_inf", None)
            optimizer.zero_grad(set_to_none=True)

    def gradient_norm(self, optimizer: torch.optim.Optimizer, device: torch.device) -> torch.Tensor:
        """The L2 norm of the gradients this update applies, on the device (``health/grad_norm/<network>``).

        It shows a generator's gradient vanishing (the minimax loss once D wins).  One fused norm per recorded update
        and no host read: the trainer reads it with the other scalars at the logging cadence.
        """
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return torch.zeros((), device=device)
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)).float())
        return norm / self.loss_scale(device)

    def read_grad_norms(self) -> dict[str, float]:
        """The recorded gradient norms, read in one device sync; each network then records its next
        update's norm even between logged steps."""
        self.read_norms = set(self.grad_norms)
        return {name: float(norm) for name, norm in self.grad_norms.items()}

    def read_deferred(self) -> None:
        """The deferred flags since the last read, in one device sync: count the skipped updates, or raise
        :class:`NonFiniteLoss` for the first (its update and every later non-finite one were not applied)."""
        if self.flags is None:
            return
        count, first = self.flags.read()
        if count and not self.skip_non_finite:
            raise NonFiniteLoss(*first)
        self.skipped += count

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


class DeviceFlags:
    """Non-finite losses of the deferred check, counted on the device without a sync.

    Each update adds its loss's flag to ``count`` and, for the first flagged loss since the
    last read, keeps its step, which update it was and its value.  Everything is in-place
    arithmetic on device tensors, so it also runs inside a captured CUDA graph; ``step`` is
    filled in before each training step.
    """

    def __init__(self, device: torch.device, step: int):
        self.count = torch.zeros((), dtype=torch.float64, device=device)
        self.first = torch.full((3,), -1.0, dtype=torch.float64, device=device)  # step, update, loss value
        self.step = torch.full((), float(step), dtype=torch.float64, device=device)
        self.updates: list[tuple[str, ...]] = []  # the names of each update, by index

    def record(self, names: tuple[str, ...], loss: torch.Tensor) -> torch.Tensor:
        """Count ``loss`` if it is not finite; returns the flag (1.0 or 0.0) that fused Adam skips on."""
        if names not in self.updates:
            self.updates.append(names)
        bad = ~torch.isfinite(loss).all()
        first = bad & (self.count == 0)
        here = torch.stack([self.step, torch.full_like(self.step, self.updates.index(names)), loss.double().sum()])
        self.first.copy_(torch.where(first, here, self.first))
        self.count.add_(bad.double())
        return bad.float()

    def read(self) -> tuple[int, tuple[tuple[str, ...], float, int]]:
        """(flagged losses since the last read, (names, value, step) of the first); then starts afresh."""
        count, step, update, value = torch.cat([self.count[None], self.first]).tolist()  # the one sync
        self.count.zero_()
        self.first.fill_(-1.0)
        if not count:
            return 0, ((), 0.0, 0)
        return int(count), (self.updates[int(update)], value, int(step))


def defers_nan_check(
    check: NonFiniteCheck,
    device: torch.device,
    optimizers: Iterable[torch.optim.Optimizer],
    gradient_scaling: bool,
    world_size: int,
) -> bool:
    """Whether the NaN check runs on the device (``trainer.nan_check``).

    It needs fused Adam (which can skip an update on the device's flag), no fp16 gradient
    scaler (which owns that flag) and one process (under torchrun every process must skip
    the same update).  ``auto`` defers on CUDA, where a host read stops the host from
    queueing the next update while the card works; on the CPU that read costs nothing.
    """
    possible = all(o.defaults.get("fused") for o in optimizers) and not gradient_scaling and world_size == 1
    if check == NonFiniteCheck.deferred and not possible:
        raise ConfigError(
            "trainer.nan_check=deferred needs fused Adam for every network (optimizer=adam with "
            "optimizer.fused=true; RMSprop has no fused form), no fp16 gradient scaler (device.precision=fp32 "
            "or bf16) and a single process (not torchrun). Use trainer.nan_check=auto or update."
        )
    return check == NonFiniteCheck.deferred or (check == NonFiniteCheck.auto and possible and device.type == "cuda")
