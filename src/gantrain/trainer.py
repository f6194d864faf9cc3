"""The one training loop, shared by every GAN family.

The trainer owns everything that is the same for all recipes: device and
precision, the data order, the progress bar, TensorBoard, sample grids,
checkpoints, exact resume and a clean stop on SIGINT / SIGTERM.  A recipe only
says how one batch updates its networks.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from gantrain.checkpoint import CHECKPOINT_DIR, LAST, keep_copy, save_checkpoint
from gantrain.config import DeviceConfig, DeviceType, Precision, TrainerConfig
from gantrain.errors import ConfigError, DatasetError
from gantrain.logging import RunLogger
from gantrain.recipes.base import Recipe, Step

log = logging.getLogger(__name__)

AUTOCAST_DTYPES = {Precision.bf16: torch.bfloat16, Precision.fp16: torch.float16}


def resolve_device(kind: DeviceType) -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; a forced device must exist."""
    kind = DeviceType(kind)
    if kind == DeviceType.auto:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = {
        DeviceType.cpu: True,
        DeviceType.cuda: torch.cuda.is_available(),
        DeviceType.mps: torch.backends.mps.is_available(),
    }
    if not available[kind]:
        raise ConfigError(f"device={kind.value} was requested but this machine has none: use device=auto or device=cpu.")
    return torch.device(kind.value)


def resolve_precision(precision: Precision, device: torch.device) -> Precision:
    """``auto`` means bf16 autocast on CUDA cards and CPUs with native bf16 (AVX-512 BF16, AMX), else fp32."""
    precision = Precision(precision)
    if precision != Precision.auto:
        return precision
    if device.type == "cuda":
        return Precision.bf16 if torch.cuda.is_bf16_supported() else Precision.fp32
    if device.type == "cpu":
        try:
            native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
        except (AttributeError, RuntimeError):  # a build without oneDNN
            native = False
        return Precision.bf16 if native else Precision.fp32
    return Precision.fp32


class EpochShuffle(Sampler[int]):
    """A fresh permutation each epoch, drawn from (seed, epoch) alone.

    The order does not depend on any global random state, so a resumed run can
    start in the middle of an epoch and see exactly the samples the original would have.
    """

    def __init__(self, length: int, seed: int, epoch: int, start: int = 0):
        self.length, self.seed, self.epoch, self.start = length, seed, epoch, start

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.length, generator=generator)[self.start :].tolist())

    def __len__(self) -> int:
        return self.length - self.start


def move_to(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Move every tensor of a batch (a tensor, or a dict / list / tuple of them) to ``device``."""
    if isinstance(batch, dict):
        return {key: move_to(value, device, channels_last) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(value, device, channels_last) for value in batch)
    if not isinstance(batch, torch.Tensor):
        return batch
    batch = batch.to(device, non_blocking=True)
    if channels_last and batch.dim() == 4:
        batch = batch.contiguous(memory_format=torch.channels_last)
    return batch


@dataclass
class FitResult:
    step: int
    interrupted_by: int | None = None  # signal number when stopped early


class Trainer:
    def __init__(
        self,
        cfg: TrainerConfig,
        device_cfg: DeviceConfig,
        run_dir: Path,
        seed: int,
        run_record: dict[str, Any],
    ):
        """``run_record`` (config YAML, group choices) is stored in every checkpoint."""
        if cfg.batch_size < 1 or cfg.max_steps < 0:
            raise ConfigError(
                f"trainer.batch_size must be at least 1 and trainer.max_steps at least 0 "
                f"(got {cfg.batch_size} and {cfg.max_steps})."
            )
        self.cfg = cfg
        self.device = resolve_device(device_cfg.type)
        self.precision = resolve_precision(device_cfg.precision, self.device)
        self.channels_last = device_cfg.channels_last
        self.compile = device_cfg.compile
        self.run_dir = run_dir
        self.seed = seed
        self.run_record = run_record
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == Precision.fp16)
        self._stop_signal: int | None = None

    # -- data ---------------------------------------------------------------------------------
    def steps_per_epoch(self, dataset: Dataset) -> int:
        per_epoch = len(dataset) // self.cfg.batch_size
        if per_epoch == 0:
            raise DatasetError(
                f"The dataset has {len(dataset)} items, fewer than one batch of trainer.batch_size="
                f"{self.cfg.batch_size}: add images or lower trainer.batch_size."
            )
        return per_epoch

    def batches(self, dataset: Dataset, start_step: int) -> Iterator[Any]:
        """Endless batches in the order fixed by the seed; skips the ``start_step`` batches already used.

        Random augmentation inside the dataset draws from the global RNG, whose state
        the checkpoints keep; with ``num_workers > 0`` the workers' seeds depend on the
        epoch only, so a resume in the middle of an epoch re-draws that epoch's crops.
        """
        epoch, offset = divmod(start_step, self.steps_per_epoch(dataset))
        while True:
            loader = DataLoader(
                dataset,
                batch_size=self.cfg.batch_size,
                sampler=EpochShuffle(len(dataset), self.seed, epoch, offset * self.cfg.batch_size),
                drop_last=True,
                num_workers=self.cfg.num_workers,
                pin_memory=self.device.type == "cuda",
                # worker seeds from a private generator: the global RNG stays untouched
                generator=torch.Generator().manual_seed(self.seed + epoch),
            )
            yield from loader
            epoch, offset = epoch + 1, 0

    def to_device(self, batch: Any) -> Any:
        return move_to(batch, self.device, self.channels_last)

    # -- state --------------------------------------------------------------------------------
    def state(self, recipe: Recipe, step: int) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            **self.run_record,
            "step": step,
            "recipe": recipe.state_dict(),
            "optimizers": {name: opt.state_dict() for name, opt in recipe.optimizers().items()},
            "schedulers": {name: scheduler.state_dict() for name, scheduler in recipe.schedulers().items()},
            "scaler": self.scaler.state_dict(),
            "rng": rng,
        }

    def restore(self, recipe: Recipe, state: dict[str, Any]) -> int:
        """Put recipe, optimizers, scaler and RNG back as they were; returns the step to continue from."""
        recipe.load_state_dict(state["recipe"])
        for name, optimizer in recipe.optimizers().items():
            optimizer.load_state_dict(state["optimizers"][name])
        for name, scheduler in recipe.schedulers().items():
            scheduler.load_state_dict(state["schedulers"][name])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["torch"])
        if self.device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        return int(state["step"])

    def save(self, recipe: Recipe, step: int, keep: bool) -> Path:
        folder = self.run_dir / CHECKPOINT_DIR
        path = folder / LAST
        save_checkpoint(self.state(recipe, step), path)
        if keep:
            keep_copy(path, folder / f"step_{step:07d}.pt")
        return path

    # -- the loop -----------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._stop_signal = signum

    def fit(
        self,
        recipe: Recipe,
        dataset: Dataset,
        resume_state: dict[str, Any] | None = None,
        judge: Callable[[torch.Tensor], dict[str, float]] | None = None,
        visual_dataset: Dataset | None = None,
    ) -> FitResult:
        """Train until ``trainer.max_steps`` (or ``max_epochs``).

        The sample grids come from the first ``num_samples`` items of ``visual_dataset``
        (the test split where there is one); ``judge`` scores generated samples when given.
        """
        cfg = self.cfg
        steps_per_epoch = self.steps_per_epoch(dataset)
        max_steps = cfg.max_steps if cfg.max_epochs is None else cfg.max_epochs * steps_per_epoch
        recipe.to(self.device)
        if self.channels_last:
            recipe.to(memory_format=torch.channels_last)
        start_step = self.restore(recipe, resume_state) if resume_state else 0
        if self.compile:
            for network in recipe.compilable_networks():
                network.compile()
        visual_dataset = dataset if visual_dataset is None else visual_dataset
        fixed_batch = self.to_device(
            default_collate([visual_dataset[i] for i in range(min(cfg.num_samples, len(visual_dataset)))])
        )
        step_fn = Step(recipe.optimizers(), self.scaler)
        autocast = torch.autocast(
            self.device.type,
            dtype=AUTOCAST_DTYPES.get(self.precision, torch.float32),
            enabled=self.precision != Precision.fp32,
        )
        # on resume, TensorBoard drops what the stopped run logged after its last checkpoint
        logger = RunLogger(self.run_dir, purge_step=start_step + 1 if resume_state else None)
        if not resume_state:
            logger.describe_run(self.run_record["config"])
            logger.images(recipe.real_visuals(fixed_batch), 0)
        log.info(
            "%s from step %d to %d on %s (%s), batch %d; run directory %s",
            "Resuming" if resume_state else "Training",
            start_step, max_steps, self.device, self.precision.value, cfg.batch_size, self.run_dir,
        )

        if start_step >= max_steps:
            log.warning("The run is already at step %d of %d: pass a larger trainer.max_steps "
                        "(or trainer.max_epochs) to train it further.", start_step, max_steps)

        previous_handlers = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        latest: dict[str, torch.Tensor] = {}
        step = start_step
        saved_step = sampled_step = start_step
        tick, tick_step = time.perf_counter(), step
        data = self.batches(dataset, start_step)
        try:
            with logging_redirect_tqdm(), tqdm(
                total=max_steps, initial=start_step, disable=None if cfg.progress else True, dynamic_ncols=True, unit="step"
            ) as progress:
                while step < max_steps and self._stop_signal is None:
                    batch = self.to_device(next(data))
                    with autocast:
                        latest.update(recipe.train_step(batch, step_fn))
                    self.scaler.update()
                    step += 1
                    progress.update(1)
                    if recipe.schedule_per_step or step % steps_per_epoch == 0:
                        for scheduler in recipe.schedulers().values():
                            scheduler.step()

                    if step % cfg.log_every == 0 or step == max_steps:
                        now = time.perf_counter()
                        values = {tag: float(value) for tag, value in latest.items()}
                        values["perf/images_per_s"] = (step - tick_step) * cfg.batch_size / (now - tick)
                        values.update(
                            {f"lr/{name}": opt.param_groups[0]["lr"] for name, opt in recipe.optimizers().items()}
                        )
                        tick, tick_step = now, step
                        logger.scalars(values, step)
                        progress.set_postfix(
                            {tag.split("/")[-1]: f"{v:.3g}" for tag, v in values.items() if tag.startswith("loss/")}
                        )
                        log.info("step %d: %s", step, ", ".join(f"{t} {v:.4g}" for t, v in values.items()))
                    if step % cfg.sample_every == 0 or step == max_steps:
                        self.sample(recipe, fixed_batch, autocast, logger, step, judge)
                        sampled_step = step
                    if step % cfg.checkpoint_every == 0 or step == max_steps:
                        self.save(recipe, step, keep=step % cfg.checkpoint_every == 0)
                        saved_step = step
            if step != saved_step:  # stopped by a signal between checkpoints
                self.save(recipe, step, keep=False)
            if step != sampled_step:
                self.sample(recipe, fixed_batch, autocast, logger, step, judge)
        finally:
            for sig, handler in previous_handlers.items():
                signal.signal(sig, handler)
            logger.close()
        if self._stop_signal is not None:
            log.warning(
                "Stopped by signal %d at step %d; checkpoint written. Continue with resume=%s",
                self._stop_signal, step, self.run_dir,
            )
        return FitResult(step=step, interrupted_by=self._stop_signal)

    @torch.no_grad()
    def sample(self, recipe: Recipe, fixed_batch: torch.Tensor, autocast, logger: RunLogger, step: int, judge) -> None:
        """Sample grids from fixed inputs, in eval mode; judged when the dataset has a judge."""
        recipe.eval()
        try:
            with autocast:
                visuals = recipe.visuals(fixed_batch)
        finally:
            recipe.train()
        logger.images(visuals, step)
        if judge is not None and "samples" in visuals:
            logger.scalars({f"quality/{k}": v for k, v in judge(visuals["samples"].float()).items()}, step)
