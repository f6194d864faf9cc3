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
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from gantrain import distributed
from gantrain.checkpoint import BEST, CHECKPOINT_DIR, LAST, keep_copy, prune_kept, save_checkpoint
from gantrain.config import (
    BadFilePolicy,
    DeviceConfig,
    NonFiniteCheck,
    NonFinitePolicy,
    Precision,
    TrainerConfig,
)
from gantrain.data.bad_files import SkipBadFiles, collate_reporting_bad_files
from gantrain.device import autocast, measured_choice, move_to, resolve_device, resolve_precision
from gantrain.errors import CheckpointError, ConfigError, DatasetError, TrainingError
from gantrain.graphs import (
    CapturedSteps,
    graph_decision,
    plain_scheduler_state,
    plain_state_dict,
    prepare_optimizers,
)
from gantrain.metrics import improves
from gantrain.recipes.base import Recipe, as_if_scheduled_from_the_start
from gantrain.run_log import METRICS_CSV, RunLogger, duration, flat_hyperparameters
from gantrain.step import NonFiniteLoss, Step, defers_nan_check

log = logging.getLogger(__name__)

FINAL_METRICS = ("loss/", "quality/", "eval/", "best/")  # scalar tags shown in TensorBoard's HParams table


class EpochShuffle(Sampler[int]):
    """A fresh permutation each epoch, drawn from (seed, epoch) alone, and this process's share of it.

    The order does not depend on any global random state, so a resumed run can
    start in the middle of an epoch and see exactly the samples the original would have.
    Under torchrun, process ``rank`` of ``world_size`` takes every ``world_size``-th item
    of the permutation (the remainder is dropped), so the processes see disjoint items.
    """

    def __init__(self, length: int, seed: int, epoch: int, start: int = 0, rank: int = 0, world_size: int = 1):
        self.length, self.seed, self.epoch, self.start = length, seed, epoch, start
        self.rank, self.world_size = rank, world_size

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.length, generator=generator)
        share = order[self.rank : self.length - self.length % self.world_size : self.world_size]
        return iter(share[self.start :].tolist())

    def __len__(self) -> int:
        return self.length // self.world_size - self.start


@dataclass
class FitResult:
    step: int
    interrupted_by: int | None = None  # signal number when stopped early
    scores: dict[str, float] | None = None  # the last evaluation's
    best: dict[str, Any] | None = None  # {"metric", "value", "step"} of checkpoints/best.pt


DATA_WAIT_WARNING = 0.05
"""Above this share of a log interval spent waiting for batches, the run says which settings would help."""


@dataclass
class Run:
    """What one call of :meth:`Trainer.fit` carries from step to step."""

    recipe: Recipe
    dataset: Dataset
    data: Iterator[tuple[Any, list[str]]]
    step: int
    max_steps: int
    steps_per_epoch: int
    fixed_batch: Any  # the sample grids' inputs
    logger: RunLogger | None  # rank 0's TensorBoard writer
    step_fn: Step
    autocast: torch.autocast
    bare: Callable[[], AbstractContextManager]  # the networks without DDP, for what rank 0 does alone
    replicas: distributed.ReplicatedNetworks | None
    runner: CapturedSteps | None  # the captured steps, where CUDA graphs apply
    sampled_step: int
    scores: dict[str, float] | None = None  # the last evaluation's
    tick: float = field(default_factory=time.perf_counter)  # when the figures of the next log line started
    tick_step: int = 0
    data_wait: float = 0.0  # seconds spent waiting for batches since ``tick``
    started: float = field(default_factory=time.perf_counter)
    start_step: int = 0
    told_data_wait: bool = False  # the loader-bottleneck warning is given once a run

    def __post_init__(self) -> None:
        self.tick_step = self.start_step = self.step

    def due(self, every: int, ahead: int = 0) -> bool:
        """Whether a periodic action is due after this step (``ahead=1``: after the next one): every
        ``every`` steps, and after the last one."""
        step = self.step + ahead
        return step % every == 0 or step == self.max_steps


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
        if cfg.batch_size < 1 or (cfg.max_steps or 0) < 0 or (cfg.max_epochs or 0) < 0:
            raise ConfigError(
                f"trainer.batch_size must be at least 1 and trainer.max_steps at least 0 "
                f"(got {cfg.batch_size} and {cfg.max_steps})."
            )
        self.cfg = cfg
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        self.device = resolve_device(device_cfg.type)
        if self.device.type == "cuda" and distributed.active():
            self.device = torch.device("cuda", torch.cuda.current_device())  # torchrun's LOCAL_RANK
        self.precision = resolve_precision(
            device_cfg.precision, self.device,
            captured=str(device_cfg.cuda_graphs).lower() != "false" and self.world_size == 1,
        )
        self.channels_last = measured_choice(device_cfg.channels_last, device_cfg.channels_last_faster_on, self.device)
        self.compile = measured_choice(device_cfg.compile, device_cfg.compile_faster_on, self.device)
        self.compile_backend = device_cfg.compile_backend
        self.cuda_graphs = device_cfg.cuda_graphs
        if self.compile and self.compile_backend not in (backends := torch._dynamo.list_backends(exclude_tags=())):
            raise ConfigError(
                f"device.compile_backend={self.compile_backend} is not a torch.compile backend; choose one of "
                f"{', '.join(backends)} (inductor generates fast code; aot_eager only checks graph capture)."
            )
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = device_cfg.cudnn_benchmark
        self.run_dir = run_dir
        self.seed = seed
        self.run_record = run_record
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == Precision.fp16)
        self._stop_signal: int | None = None
        self.best: dict[str, Any] | None = None
        self.saved_step = 0  # the step of the last checkpoint written or resumed from
        # the last value of each step scalar: a log falling on a step without some update (a WGAN critic-only
        # step) repeats that update's last loss, and a checkpoint keeps them so that a resumed run logs the same
        self.latest: dict[str, torch.Tensor | float] = {}
        self.skipped_files = 0  # image files replaced under trainer.bad_files=skip, this session
        self.step_fn: Step | None = None  # the run's, once it trains: saving reads its deferred NaN checks first

    # -- data ---------------------------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        """Rank 0, the one process that writes TensorBoard, samples and checkpoints."""
        return self.rank == 0

    def steps_per_epoch(self, dataset: Dataset) -> int:
        per_epoch = len(dataset) // self.world_size // self.cfg.batch_size
        if per_epoch == 0:
            raise DatasetError(
                f"The dataset has {len(dataset)} items, fewer than one batch of trainer.batch_size="
                f"{self.cfg.batch_size} for each of {self.world_size} process(es): add images or lower "
                f"trainer.batch_size."
            )
        return per_epoch

    def batches(self, dataset: Dataset, start_step: int) -> Iterator[tuple[Any, list[str]]]:
        """Endless (batch, skipped files) in the order fixed by the seed, after the ``start_step`` batches used.

        Bad image files stop the run or are replaced by the next good item (``trainer.bad_files``).

        Random augmentation inside the dataset draws from the global RNG, whose state
        the checkpoints keep; with ``num_workers > 0`` the workers' seeds depend on the
        epoch only, so a resume in the middle of an epoch re-draws that epoch's crops.
        """
        epoch, offset = divmod(start_step, self.steps_per_epoch(dataset))
        while True:
            loader = DataLoader(
                SkipBadFiles(dataset, self.cfg.bad_files),
                batch_size=self.cfg.batch_size,
                collate_fn=collate_reporting_bad_files,
                sampler=EpochShuffle(
                    len(dataset), self.seed, epoch, offset * self.cfg.batch_size, self.rank, self.world_size
                ),
                drop_last=True,
                num_workers=self.cfg.num_workers,
                pin_memory=self.device.type == "cuda",
                # worker seeds from a private generator: the global RNG stays untouched
                generator=torch.Generator().manual_seed((self.seed + epoch) * self.world_size + self.rank),
            )
            yield from loader
            epoch, offset = epoch + 1, 0

    def to_device(self, batch: Any, dataset: Dataset, train: bool = True) -> Any:
        """The collated batch on the device, augmented there when the dataset keeps its images in memory."""
        transform = getattr(dataset, "batch_transform", None)
        if transform is not None:
            batch = transform(move_to(batch, self.device), train)
        return move_to(batch, self.device, self.channels_last)

    # -- how the networks run -----------------------------------------------------------------
    def place(self, recipe: Recipe) -> None:
        """Move the networks to the device, in the memory format chosen for it."""
        recipe.to(self.device)
        if self.channels_last:
            recipe.to(memory_format=torch.channels_last)

    def compile_networks(self, recipe: Recipe) -> None:
        """``torch.compile`` the networks that are never differentiated twice (``device.compile``)."""
        if self.compile:
            for network in recipe.compilable_networks():
                network.compile(backend=self.compile_backend)

    def tell_data_wait(self, run: Run, share: float) -> None:
        """Warn once when the input pipeline holds up the steps (after the first log interval, which includes
        the start), naming the settings that would help."""
        if run.told_data_wait or share <= DATA_WAIT_WARNING or run.tick_step == run.start_step:
            return
        run.told_data_wait = True
        workers = f"trainer.num_workers={self.cfg.num_workers + 2} prepares batches in worker processes"
        if getattr(run.dataset, "batch_transform", None) is None:  # not kept in memory
            workers = ("dataset.in_memory=true keeps the decoded images (off now: see the start-up log), and "
                       f"{workers} where cores are spare")
        log.warning("The steps waited for data %d%% of the time (perf/data_wait_share %.3f): the input pipeline is "
                    "the bottleneck. %s.", round(100 * share), share, workers)

    def autocast(self, graphs: bool = False) -> torch.autocast:
        """Autocast at the run's precision; inside CUDA graphs without its weight-cast cache (PyTorch's advice)."""
        return autocast(self.device, self.precision, cache=not graphs)

    def step_function(self, recipe: Recipe, graphs: bool = False) -> Step:
        """The run's Step; captured steps always count non-finite losses on the device (a host read would sync)."""
        optimizers = recipe.optimizers()
        defer = graphs or defers_nan_check(NonFiniteCheck(self.cfg.nan_check), self.device, optimizers.values(),
                                           self.scaler.is_enabled(), self.world_size)
        return Step(optimizers, self.scaler, skip_non_finite=self.cfg.on_nan == NonFinitePolicy.skip,
                    defer_check=defer)

    def captured_steps(self, recipe: Recipe) -> CapturedSteps | None:
        """The CUDA graphs of the recipe's steps where ``device.cuda_graphs`` and the run allow them (the
        start-up log says which, and why not)."""
        fused = all(o.defaults.get("fused") for o in recipe.optimizers().values())
        graphs, why = graph_decision(
            self.cuda_graphs, self.device, self.world_size, self.precision, recipe.supports_cuda_graphs,
            skip_needs_device=self.cfg.on_nan == NonFinitePolicy.skip and not fused,
        )
        log.info("CUDA graphs: %s", why)
        self.step_fn = self.step_function(recipe, graphs)
        if not graphs:
            return None
        prepare_optimizers(recipe.optimizers(), self.device)
        return CapturedSteps(recipe, self.step_fn, self.device)

    # -- state --------------------------------------------------------------------------------
    def rng_state(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return rng

    def set_rng_state(self, rng: dict[str, Any]) -> None:
        torch.set_rng_state(rng["torch"])
        if self.device.type == "cuda" and "cuda" in rng:
            torch.cuda.set_rng_state_all(rng["cuda"])

    def state(self, recipe: Recipe, step: int, all_ranks: bool = True) -> dict[str, Any]:
        """Everything to resume from.

        Under torchrun with ``all_ranks`` every process must call it: it gathers their RNG states.
        """
        rng = self.rng_state()
        if self.world_size > 1 and all_ranks:
            rng["ranks"] = distributed.gathered(rng)
        return {
            **self.run_record,
            "step": step,
            "recipe": recipe.state_dict(),
            "optimizers": {name: plain_state_dict(opt) for name, opt in recipe.optimizers().items()},
            "schedulers": {name: plain_scheduler_state(scheduler) for name, scheduler in recipe.schedulers().items()},
            "scaler": self.scaler.state_dict(),
            "rng": rng,
            "best": self.best,
            "latest_scalars": {tag: float(value) for tag, value in self.latest.items()},
        }

    def restore(self, recipe: Recipe, state: dict[str, Any]) -> int:
        """Put recipe, optimizers, scaler and RNG back as they were; returns the step to continue from."""
        try:
            recipe.load_state_dict(state["recipe"])
        except RuntimeError as error:
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            raise CheckpointError(
                f"The checkpoint's networks do not fit the configured ones ({lines[-1]}). "
                f"Resume without the overrides that change the networks (model.*, dataset.image_size, "
                f"dataset.channels)."
            ) from None
        for name, optimizer in recipe.optimizers().items():
            optimizer.load_state_dict(state["optimizers"][name])
        step = int(state["step"])
        for name, scheduler in recipe.schedulers().items():
            if name in state["schedulers"]:
                scheduler.load_state_dict(state["schedulers"][name])
            else:  # a decay given on resume to a run without one; only WGAN's can be absent, and it counts steps
                as_if_scheduled_from_the_start(scheduler, step)
        self.scaler.load_state_dict(state["scaler"])
        self.best = state.get("best")
        self.latest = dict(state.get("latest_scalars", {}))  # absent from checkpoints written before 2026-12-04
        ranks = state["rng"].get("ranks", [state["rng"]])
        if self.world_size == 1:
            self.set_rng_state(state["rng"])
        elif len(ranks) == self.world_size:
            self.set_rng_state(ranks[self.rank])
        else:
            log.warning(
                "The checkpoint holds the random state of %d process(es) and %d resume it: the data order "
                "and random draws continue differently from an uninterrupted run.", len(ranks), self.world_size,
            )
            torch.manual_seed(distributed.process_seed(self.seed) + step)
        return step

    def save(self, recipe: Recipe, step: int, keep: bool) -> Path:
        """Write ``last.pt`` (and ``step_<n>.pt`` when ``keep``); a failed write stops the run.

        Training on without checkpoints would risk losing everything after the last one.
        Under torchrun every process calls it at the same step and rank 0 writes.
        """
        if self.step_fn is not None:
            self.read_deferred_checks(self.step_fn)
        folder = self.run_dir / CHECKPOINT_DIR
        path = folder / LAST
        state = self.state(recipe, step)
        if self.is_main:
            try:
                save_checkpoint(state, path)
                if keep:
                    keep_copy(path, folder / f"step_{step:07d}.pt")
                    prune_kept(folder, self.cfg.keep_checkpoints, self.cfg.keep_checkpoints_every)
            except OSError as error:
                raise TrainingError(
                    f"Could not write the checkpoint {path} at step {step}: {error.strerror or error}. "
                    f"{self.intact_checkpoint()} Free disk space or make {folder} writable, then continue "
                    f"with resume={self.run_dir}."
                ) from None
        self.saved_step = step
        return path

    def intact_checkpoint(self) -> str:
        """Which checkpoint a stopped run can continue from, for error messages."""
        if self.saved_step == 0:
            return "No checkpoint had been written yet."
        return f"The last checkpoint, {self.run_dir / CHECKPOINT_DIR / LAST} (step {self.saved_step}), is intact."

    def next_batch(self, data: Iterator[tuple[Any, list[str]]], recipe: Recipe, step: int) -> Any:
        """The next batch; a crashed loader worker stops the run with a checkpoint of this step."""
        try:
            batch, skipped = next(data)
        except DatasetError:  # a bad file under trainer.bad_files=fail: keep the steps done so far
            self.save_after_failure(recipe, step)
            raise
        except RuntimeError as error:  # e.g. "DataLoader worker (pid 123) is killed by signal: Killed"
            self.save_after_failure(recipe, step)
            raise TrainingError(
                f"Loading data failed at step {step + 1}: {str(error).rstrip('.')}. {self.intact_checkpoint()} "
                f"If a worker ran out of memory, lower trainer.num_workers or trainer.batch_size, then "
                f"continue with resume={self.run_dir}."
            ) from None
        for file in skipped:
            log.warning("Skipped the unreadable image file %s (trainer.bad_files=skip)", file)
        self.skipped_files += len(skipped)
        return batch

    def save_after_failure(self, recipe: Recipe, step: int) -> None:
        """Keep the steps done before a failure of this process alone (the others cannot join a save)."""
        if step != self.saved_step and self.world_size == 1:
            self.save(recipe, step, keep=False)

    def checked_step(
        self, recipe: Recipe, batch: Any, step_fn: Step, step: int, record_norms: bool
    ) -> dict[str, torch.Tensor]:
        """``recipe.train_step``; a NaN or infinite loss stops the run before it reaches the weights."""
        step_fn.begin_step(step + 1, record_norms)
        try:
            return recipe.train_step(batch, step_fn)
        except NonFiniteLoss as error:
            raise self.diverged(error) from None

    def read_deferred_checks(self, step_fn: Step) -> None:
        """Under ``trainer.nan_check=deferred``: a non-finite loss since the last read stops the run here,
        before it logs or saves anything (its update was skipped on the device)."""
        try:
            step_fn.read_deferred()
        except NonFiniteLoss as error:
            raise self.diverged(error) from None

    def diverged(self, error: NonFiniteLoss) -> TrainingError:
        return TrainingError(
            f"Training diverged at step {error.step}: {error}, so that update was not applied and nothing "
            f"was saved after it. {self.intact_checkpoint()} Lower optimizer.lr, train in "
            f"device.precision=fp32 or bf16 rather than fp16, or set trainer.on_nan=skip to drop such "
            f"updates; continue with resume={self.run_dir}."
        )

    # -- the loop -----------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._stop_signal = signum

    def fit(
        self,
        recipe: Recipe,
        dataset: Dataset,
        resume_state: dict[str, Any] | None = None,
        visual_dataset: Dataset | None = None,
        evaluate: Callable[[Recipe], dict[str, float]] | None = None,
        best_metric: str | None = None,
    ) -> FitResult:
        """Train until ``trainer.max_steps`` (or ``max_epochs``).

        The sample grids come from the first ``num_samples`` items of ``visual_dataset``
        (the test split where there is one), scored by ``recipe.sample_quality``.
        ``evaluate`` runs every ``trainer.eval_every`` steps; the checkpoint with the best
        ``best_metric`` so far is kept as ``checkpoints/best.pt``.
        """
        run = self.begin(recipe, dataset, resume_state, visual_dataset)
        previous_handlers = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            with logging_redirect_tqdm(), self.progress_bar(run) as progress:
                while run.step < run.max_steps and not self.stop_requested():
                    self.train_one_step(run)
                    progress.update(1)
                    if run.due(self.cfg.log_every):
                        self.log_scalars(run, progress)
                    if run.due(self.cfg.sample_every):
                        self.sample_grids(run)
                    if evaluate is not None and self.cfg.eval_every > 0 and run.due(self.cfg.eval_every):
                        self.evaluate(run, evaluate, best_metric)
                    if run.due(self.cfg.checkpoint_every):
                        self.save(recipe, run.step, keep=run.step % self.cfg.checkpoint_every == 0)
            self.finish(run)
        finally:
            for sig, handler in previous_handlers.items():
                signal.signal(sig, handler)
            self.close(run)
        if self._stop_signal is not None:
            log.warning(
                "Stopped by signal %d at step %d; checkpoint written. Continue with resume=%s",
                self._stop_signal, run.step, self.run_dir,
            )
        if run.logger is not None:
            self.summarise(run)
        return FitResult(step=run.step, interrupted_by=self._stop_signal, scores=run.scores, best=self.best)

    def summarise(self, run: Run) -> None:
        """The end of a run in a few lines: how far it got, its last figures, and where everything is."""
        latest, seconds = run.logger.latest, time.perf_counter() - run.started
        steps = run.step - run.start_step

        def figures(prefix: str) -> str:
            return ", ".join(f"{tag.removeprefix(prefix)} {v:.4g}" for tag, v in latest.items() if tag.startswith(prefix))

        kept = sorted(path.name for path in (self.run_dir / CHECKPOINT_DIR).glob("step_*.pt"))
        lines = [
            f"Run summary: step {run.step} of {run.max_steps}, {steps} steps in {duration(seconds)}"
            + (f" ({steps / seconds:.3g} steps/s)" if seconds > 0 and steps else ""),
            f"  last losses: {figures('loss/') or '-'}",
            f"  last sample quality: {figures('quality/') or '-'}",
        ]
        if run.scores:
            lines.append(f"  last evaluation: {figures('eval/')}")
        if self.best is not None:
            lines.append(f"  best {self.best['metric']}: {self.best['value']:.4g} at step {self.best['step']} "
                         f"({CHECKPOINT_DIR}/{BEST})")
        lines += [
            f"  checkpoints: {self.run_dir / CHECKPOINT_DIR / LAST}" + (f" (and {', '.join(kept)})" if kept else ""),
            f"  samples: {self.run_dir / 'samples'}",
            f"  scalars: {self.run_dir / METRICS_CSV} (plot: gantrain-plot {self.run_dir})",
            f"  TensorBoard: tensorboard --logdir {self.run_dir}",
        ]
        log.info("\n".join(lines))

    def begin(
        self, recipe: Recipe, dataset: Dataset, resume_state: dict[str, Any] | None, visual_dataset: Dataset | None
    ) -> Run:
        """Place, restore, compile and wrap the networks; open TensorBoard; fix the sample batch."""
        cfg = self.cfg
        steps_per_epoch = self.steps_per_epoch(dataset)
        max_steps, length = self.training_length(steps_per_epoch)
        self.place(recipe)
        start_step = self.restore(recipe, resume_state) if resume_state else 0
        if cfg.sync_batchnorm and distributed.active():
            distributed.convert_sync_batchnorm(recipe.trained_networks(), recipe, self.device)
        self.compile_networks(recipe)
        replicas = None
        if distributed.active():
            replicas = distributed.ReplicatedNetworks(recipe, recipe.trained_networks(), self.device)
        visual_dataset = dataset if visual_dataset is None else visual_dataset
        fixed_batch = self.to_device(
            default_collate([visual_dataset[i] for i in range(min(cfg.num_samples, len(visual_dataset)))]),
            visual_dataset, train=False,
        )
        logger = None
        if self.is_main:
            # on resume, TensorBoard drops what the stopped run logged after its last checkpoint
            logger = RunLogger(self.run_dir, purge_step=start_step + 1 if resume_state else None)
            if not resume_state:
                logger.describe_run(self.run_record["config"])
                logger.images(recipe.real_visuals(fixed_batch), 0)
        runner = self.captured_steps(recipe)
        log.info(
            "%s from step %d to %d (%s) on %s (%s), batch %s; run directory %s",
            "Resuming" if resume_state else "Training", start_step, max_steps, length, self.device,
            self.precision.value, self.describe_batch(), self.run_dir,
        )
        if start_step >= max_steps:
            log.warning("The run is already at step %d of %d: pass a larger trainer.max_steps "
                        "(or trainer.max_epochs) to train it further.", start_step, max_steps)
        self.saved_step = start_step
        return Run(
            recipe, dataset, self.batches(dataset, start_step), start_step, max_steps, steps_per_epoch, fixed_batch,
            logger, self.step_fn, self.autocast(graphs=runner is not None), replicas.bare if replicas else nullcontext,
            replicas, runner, sampled_step=start_step,
        )

    def training_length(self, steps_per_epoch: int) -> tuple[int, str]:
        """The last step, the first reached of ``max_steps`` and ``max_epochs``, and how it was decided."""
        cfg = self.cfg
        limits = {}
        if cfg.max_steps is not None:
            limits[f"trainer.max_steps={cfg.max_steps}"] = cfg.max_steps
        if cfg.max_epochs is not None:
            limits[f"trainer.max_epochs={cfg.max_epochs} of {steps_per_epoch} steps"] = cfg.max_epochs * steps_per_epoch
        first = min(limits, key=limits.get)
        if len(limits) == 1:
            return limits[first], first
        return limits[first], f"the first of {' and '.join(limits)}: {first}"

    def progress_bar(self, run: Run) -> tqdm:
        return tqdm(
            total=run.max_steps, initial=run.step, disable=None if self.cfg.progress and self.is_main else True,
            dynamic_ncols=True, unit="step",
        )

    def train_one_step(self, run: Run) -> None:
        """One batch through ``recipe.train_step``, then the schedules that follow steps or epochs."""
        waited_from = time.perf_counter()
        batch = self.to_device(self.next_batch(run.data, run.recipe, run.step), run.dataset)
        run.data_wait += time.perf_counter() - waited_from
        with run.autocast:
            if run.runner is None:
                logged = run.due(self.cfg.log_every, ahead=1)  # the gradient norms are read on logged steps only
                self.latest.update(self.checked_step(run.recipe, batch, run.step_fn, run.step, logged))
            else:  # a captured CUDA graph replays its updates as captured: with their norms
                run.step_fn.begin_step(run.step + 1)
                self.latest.update(run.runner(batch, self.cfg.batch_size))
        run.step_fn.end_iteration()
        run.step += 1
        if run.recipe.schedule_per_step or run.step % run.steps_per_epoch == 0:
            for scheduler in run.recipe.schedulers().values():
                scheduler.step()
        if self.cfg.weight_digests:
            distributed.append_weight_digest(self.cfg.weight_digests, run.recipe, run.step)

    def log_scalars(self, run: Run, progress: tqdm) -> None:
        """The latest losses, throughput and health figures to TensorBoard and the log (rank 0's batches)."""
        if run.step % self.cfg.log_every == 0:
            self.read_deferred_checks(run.step_fn)
        if run.logger is None:
            return
        now = time.perf_counter()
        values = {tag: float(value) for tag, value in self.latest.items()}
        images = (run.step - run.tick_step) * self.cfg.batch_size * self.world_size
        values["perf/images_per_s"] = images / (now - run.tick)
        # above a few percent, the data pipeline starves the device: see docs/performance.md
        values["perf/data_wait_share"] = run.data_wait / (now - run.tick)
        values.update({f"health/grad_norm/{name}": norm for name, norm in run.step_fn.read_grad_norms().items()})
        self.tell_data_wait(run, values["perf/data_wait_share"])
        if run.step_fn.skip_non_finite:
            values["health/skipped_updates"] = run.step_fn.skipped
        if self.cfg.bad_files == BadFilePolicy.skip:
            values["data/skipped_files"] = self.skipped_files
        values.update({f"lr/{name}": float(opt.param_groups[0]["lr"]) for name, opt in run.recipe.optimizers().items()})
        run.logger.scalars(values, run.step)
        progress.set_postfix(
            {tag.split("/")[-1]: f"{v:.3g}" for tag, v in values.items() if tag.startswith("loss/")}
        )
        steps_per_s = (run.step - run.tick_step) / (now - run.tick) if now > run.tick else 0.0
        left = (run.max_steps - run.step) / steps_per_s if steps_per_s else 0.0
        run.logger.write_table()
        log.info("step %d of %d (%d%%), %.3g steps/s, %s left: %s", run.step, run.max_steps,
                 100 * run.step // max(run.max_steps, 1), steps_per_s, duration(left),
                 ", ".join(f"{t} {v:.4g}" for t, v in values.items()))
        run.tick, run.tick_step, run.data_wait = now, run.step, 0.0

    def evaluate(self, run: Run, evaluate: Callable[[Recipe], dict[str, float]], best_metric: str | None) -> None:
        """The held-out scores (rank 0 alone), and ``best.pt`` when ``best_metric`` improved."""
        if run.logger is None:
            return
        with run.bare(), run.autocast:
            run.scores = evaluate(run.recipe)
        self.record_evaluation(run.recipe, run.scores, best_metric, run.logger, run.step)

    def finish(self, run: Run) -> None:
        """A checkpoint and sample grids of the last step when a signal stopped the run between them."""
        if run.step != self.saved_step:
            self.save(run.recipe, run.step, keep=False)
        if run.step != run.sampled_step:
            self.sample_grids(run)

    def close(self, run: Run) -> None:
        if run.replicas is not None:
            run.replicas.detach()
        if run.logger is not None:
            self.record_hyperparameters(run.logger, run.step)
            run.logger.close()

    def stop_requested(self) -> bool:
        """Whether SIGINT / SIGTERM arrived; under torchrun, at any process, so that all stop together."""
        self._stop_signal = distributed.agreed_signal(self._stop_signal)
        return self._stop_signal is not None

    def describe_batch(self) -> str:
        """The batch size, and under torchrun the effective one (every process takes its own batch)."""
        if not distributed.active():
            return str(self.cfg.batch_size)
        return (
            f"{self.cfg.batch_size} per process x {self.world_size} processes = "
            f"{self.cfg.batch_size * self.world_size} a step"
        )

    def record_hyperparameters(self, logger: RunLogger, step: int) -> None:
        """The run's settings and final metrics for TensorBoard's HParams dashboard."""
        if self.best is not None:
            logger.scalars({f"best/{self.best['metric']}": self.best["value"]}, step)
        values = {
            **self.run_record["choices"],
            **flat_hyperparameters(OmegaConf.to_container(OmegaConf.create(self.run_record["config"]))),
            "processes": self.world_size,
            "effective_batch_size": self.cfg.batch_size * self.world_size,
        }
        logger.hyperparameters(values, [tag for tag in logger.latest if tag.startswith(FINAL_METRICS)])

    def record_evaluation(
        self, recipe: Recipe, scores: dict[str, float], best_metric: str | None, logger: RunLogger, step: int
    ) -> None:
        """Log the held-out scores; keep the state as ``best.pt`` when ``best_metric`` improved."""
        logger.scalars({f"eval/{name}": value for name, value in scores.items()}, step)
        log.info("evaluation at step %d: %s", step, ", ".join(f"{k} {v:.4g}" for k, v in scores.items()))
        if best_metric is None:
            return
        value = scores[best_metric]
        if improves(best_metric, value, None if self.best is None else self.best["value"]):
            self.best = {"metric": best_metric, "value": value, "step": step}
            # rank 0 alone evaluates: its own random state only
            save_checkpoint(self.state(recipe, step, all_ranks=False), self.run_dir / CHECKPOINT_DIR / BEST)
            log.info("New best %s %.4g: checkpoint kept as %s/%s", best_metric, value, CHECKPOINT_DIR, BEST)

    @torch.no_grad()
    def sample_grids(self, run: Run) -> None:
        """Sample grids from the fixed inputs, in eval mode, and the recipe's scores of them (rank 0 alone)."""
        run.sampled_step = run.step
        if run.logger is None:
            return
        recipe = run.recipe
        with run.bare():
            recipe.eval()
            try:
                with run.autocast:
                    visuals = recipe.visuals(run.fixed_batch)
            finally:
                recipe.train()
            run.logger.images(visuals, run.step)
            quality = recipe.sample_quality(visuals, run.dataset)
        if quality:
            run.logger.scalars({f"quality/{name}": value for name, value in quality.items()}, run.step)
