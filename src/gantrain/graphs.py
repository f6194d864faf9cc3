"""Whole-step CUDA graphs (``device.cuda_graphs``): the training step captured once per update pattern, replayed.

On a GPU the eager step is host-bound: a CycleGAN iteration issues thousands of kernels
from Python, and the card waits for the host most of the time.  A captured CUDA graph
replays all of them with one launch.  What makes a step capturable:

- the recipe splits it into ``plan_step`` (host bookkeeping and host-side random choices,
  staged on the device) and ``run_step`` (device work only), and each distinct plan gets its
  own graph (WGAN: critic steps, and critic steps followed by a generator step);
- the batch is copied into static buffers that the graphs read;
- the optimizers take their learning rate as a device tensor, which the schedulers update
  in place, and run with ``capturable=True``;
- non-finite losses are counted on the device (``step.DeviceFlags``) and read at the
  logging cadence; the weight averages update without a device sync;
- each plan runs eagerly ``GRAPH_WARMUP_STEPS`` times first, on a side stream (cuDNN's
  algorithm search, the first allocations), and is captured after any resume restored the
  state, into one memory pool shared by all the plans' graphs.

Capture needs one CUDA device, no fp16 gradient scaler (it decides on the host) and no
torchrun; anything else trains eagerly, and the start-up log says why (:func:`graph_decision`).
Networks compiled by ``torch.compile`` (inductor's default mode, which launches its kernels
from Python) are captured like eager ones: their first calls, which compile, fall in the
warm-up runs.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from gantrain.errors import ConfigError
from gantrain.options import Precision

GRAPH_WARMUP_STEPS = 3
"""Eager runs of each plan before it is captured."""
SETTINGS = ("auto", "true", "false")


def graph_decision(
    setting: str,
    device: torch.device,
    world_size: int,
    precision: Precision,
    supported: bool,
    skip_needs_device: bool,
) -> tuple[bool, str]:
    """Whether to capture the training step (``device.cuda_graphs``), and the reason, for the start-up log.

    ``auto`` captures wherever it can and says why not elsewhere; ``true`` refuses to start where it
    cannot; ``false`` never captures.  ``skip_needs_device``: ``trainer.on_nan=skip`` with an optimizer
    that cannot skip an update on the device (RMSprop), which only the eager check can serve.
    """
    setting = str(setting).lower()
    if setting not in SETTINGS:
        raise ConfigError(
            f"device.cuda_graphs={setting} is not a choice: use auto (capture wherever it can), true or false."
        )
    if setting == "false":
        return False, "off (device.cuda_graphs=false)"
    reasons = [
        (device.type != "cuda", f"the device is {device.type}, and graphs capture CUDA work"),
        (world_size > 1, "torchrun's gradient all-reduce is not captured"),
        (precision == Precision.fp16, "fp16's gradient scaler decides on the host at every step"),
        (not supported, "this family's step is not capturable"),
        (skip_needs_device, "trainer.on_nan=skip needs fused Adam to skip updates on the device, which "
         + "this model's optimizer cannot"),
    ]
    blocking = [reason for applies, reason in reasons if applies]
    if not blocking:
        return True, f"on (each update pattern captured after {GRAPH_WARMUP_STEPS} eager steps)"
    if setting == "true":
        raise ConfigError(
            f"device.cuda_graphs=true cannot capture this run: {'; '.join(blocking)}. Use device.cuda_graphs=auto "
            f"to train eagerly where graphs do not apply."
        )
    return False, f"off: {'; '.join(blocking)}"


def prepare_optimizers(optimizers: dict[str, torch.optim.Optimizer], device: torch.device) -> None:
    """Make the optimizers capturable: the learning rate a device tensor (the schedulers fill it in place),
    ``capturable=True``, and their step counts on the device."""
    for optimizer in optimizers.values():
        for group in optimizer.param_groups:
            if "capturable" in group:
                group["capturable"] = True
            if not isinstance(group["lr"], torch.Tensor):
                group["lr"] = torch.tensor(float(group["lr"]), device=device)
        for state in optimizer.state.values():
            if isinstance(state.get("step"), torch.Tensor):
                state["step"] = state["step"].to(device, torch.float32)


def plain_state_dict(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's state dict with tensor learning rates as numbers, as an eager run writes it."""
    state = optimizer.state_dict()
    for group in state["param_groups"]:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"] = float(group["lr"])
    return state


def plain_scheduler_state(scheduler: torch.optim.lr_scheduler.LRScheduler) -> dict[str, Any]:
    """The scheduler's state dict with the last learning rates as numbers, as an eager run writes it."""
    state = scheduler.state_dict()
    if "_last_lr" in state:
        state["_last_lr"] = [float(lr) for lr in state["_last_lr"]]
    return state


def copy_into(static: Any, batch: Any) -> None:
    """Copy a batch (tensors in dicts, lists or tuples) into static buffers of the same structure."""
    if isinstance(static, torch.Tensor):
        static.copy_(batch, non_blocking=True)
    elif isinstance(static, dict):
        for key in static:
            copy_into(static[key], batch[key])
    elif isinstance(static, (list, tuple)):
        for buffer, value in zip(static, batch, strict=True):
            copy_into(buffer, value)


def static_copy(batch: Any) -> Any:
    """Static buffers holding a copy of ``batch`` (non-tensor items are kept as they are)."""
    if isinstance(batch, torch.Tensor):
        return batch.clone()
    if isinstance(batch, dict):
        return {key: static_copy(value) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(static_copy(value) for value in batch)
    return batch


class CudaStepGraph:
    """One plan's step as a ``torch.cuda.CUDAGraph``: capturing records the kernels without running them."""

    executes_on_capture = False

    def __init__(self, pool: Any = None):
        self.graph = torch.cuda.CUDAGraph()
        self.pool = pool

    def capture(self, step: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        with torch.cuda.graph(self.graph, pool=self.pool):
            return step()

    def replay(self) -> None:
        self.graph.replay()

    def memory_pool(self) -> Any:
        return self.graph.pool()


@dataclass
class PlanGraph:
    eager_runs: int = 0
    graph: Any = None
    outputs: dict[str, torch.Tensor] | None = None  # the graph's scalars, rewritten by each replay


class CapturedSteps:
    """The recipe's steps through one graph per plan, after eager warm-up runs of each.

    Call it with a batch on the device; it returns the step's scalars (for a replayed plan, the
    graph's static outputs, which the next replay of that plan overwrites).  ``graph_type`` is
    :class:`CudaStepGraph`; a stand-in with the same methods lets the CPU tests drive the logic.
    """

    def __init__(self, recipe: Any, step_fn: Any, device: torch.device, graph_type: Callable[..., Any] = CudaStepGraph,
                 warmup: int = GRAPH_WARMUP_STEPS):
        self.recipe, self.step_fn, self.device = recipe, step_fn, device
        self.graph_type, self.warmup = graph_type, warmup
        self.plans: dict[Hashable, PlanGraph] = {}
        self.static_batch: Any = None
        self.pool: Any = None  # one memory pool for every plan's graph

    def __call__(self, batch: Any, batch_size: int) -> dict[str, torch.Tensor]:
        plan = self.recipe.plan_step(batch_size)
        entry = self.plans.setdefault(plan, PlanGraph())
        if entry.eager_runs < self.warmup:
            entry.eager_runs += 1
            with self.side_stream():
                return self.recipe.run_step(batch, self.step_fn, plan)
        if self.static_batch is None:
            self.static_batch = static_copy(batch)
        else:
            copy_into(self.static_batch, batch)
        if entry.graph is None:
            entry.graph = self.graph_type(self.pool)
            entry.outputs = entry.graph.capture(lambda: self.recipe.run_step(self.static_batch, self.step_fn, plan))
            self.pool = entry.graph.memory_pool()
            if entry.graph.executes_on_capture:
                return entry.outputs
        entry.graph.replay()
        return entry.outputs

    def side_stream(self) -> AbstractContextManager:
        """Eager warm-up runs on a side stream, ordered after the work queued so far and before what follows
        (as the PyTorch notes on capture ask)."""
        if self.device.type != "cuda":
            return nullcontext()
        return _SideStream()


class _SideStream:
    def __enter__(self) -> None:
        self.stream = torch.cuda.Stream()
        self.stream.wait_stream(torch.cuda.current_stream())
        self.context = torch.cuda.stream(self.stream)
        self.context.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.context.__exit__(*exc)
        torch.cuda.current_stream().wait_stream(self.stream)
