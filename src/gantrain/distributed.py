"""Training in several processes under ``torchrun``: the process group, one run directory, DDP.

``torchrun --nproc_per_node=N -m gantrain ...`` starts N copies of the command line.
Each joins the process group from torchrun's environment variables (NCCL for CUDA
tensors where there is CUDA, gloo for CPU tensors), rank 0 composes its config and
picks the run directory, and the others wait for that directory and follow it, so a
run has exactly one.  Outside torchrun none of this runs and every helper answers as
for a single process.
"""

from __future__ import annotations

import hashlib
import inspect
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from gantrain.errors import ConfigError

TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
# buffers synced once at construction, never before a forward (the option's name since PyTorch 2.14)
_DDP_OPTIONS = inspect.signature(DistributedDataParallel.__init__).parameters
NO_FORWARD_BUFFER_SYNC = (
    {"forward_sync_buffers": False} if "forward_sync_buffers" in _DDP_OPTIONS else {"broadcast_buffers": False}
)


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def is_main_process_by_environment() -> bool:
    """Rank 0 as torchrun numbers the processes, before (or without) joining the process group."""
    return os.environ.get("RANK", "0") == "0"


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main_process() -> bool:
    return rank() == 0


def join_process_group() -> None:
    """Join the group torchrun set up; LOCAL_RANK picks this process's CUDA device."""
    local_rank = int(os.environ["LOCAL_RANK"])
    cuda = torch.cuda.is_available() and local_rank < torch.cuda.device_count()
    if cuda:
        torch.cuda.set_device(local_rank)
    # control messages (run directory, stop signals, RNG states) travel as CPU tensors over gloo
    dist.init_process_group("cpu:gloo,cuda:nccl" if cuda and dist.is_nccl_available() else "gloo")


def leave_process_group() -> None:
    if active():
        dist.destroy_process_group()


def share_run_directory(run_dir: str | None) -> str:
    """Rank 0 passes its run directory, every other rank receives it (all ranks call this once)."""
    message = [run_dir]
    dist.broadcast_object_list(message, src=0)
    return message[0]


def follower_overrides(run_dir: str) -> list[str]:
    """Hydra overrides for ranks other than 0: rank 0's directory, no second config record, warnings only."""
    quoted = run_dir.replace("'", "\\'")
    return [
        f"hydra.run.dir='{quoted}'",
        "hydra.output_subdir=null",
        "hydra/job_logging=stdout",
        "hydra.job_logging.root.level=WARNING",
    ]


def process_seed(seed: int) -> int:
    """The seed of this process's random draws (noise, augmentation): another one on every rank."""
    return seed + 1_000_003 * rank()


def everywhere(flag: bool) -> bool:
    """Whether ``flag`` holds on every process, so that all of them take the same branch."""
    if not active():
        return flag
    value = torch.tensor(int(flag))
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value)


def agreed_signal(signum: int | None) -> int | None:
    """A stop signal any process has received, so that all stop after the same step."""
    if not active():
        return signum
    value = torch.tensor(signum or 0)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return int(value) or None


def gathered(value: object) -> list[object]:
    """``value`` from every process, in rank order."""
    if not active():
        return [value]
    values: list[object] = [None] * world_size()
    dist.all_gather_object(values, value)
    return values


def convert_sync_batchnorm(networks: dict[str, nn.Module], owner: nn.Module, device: torch.device) -> None:
    """Replace the BatchNorm layers of ``owner``'s networks by SyncBatchNorm (statistics over all processes)."""
    if device.type != "cuda":
        raise ConfigError(
            "trainer.sync_batchnorm=true needs CUDA devices (PyTorch's SyncBatchNorm runs on GPUs only): "
            "drop it for CPU training."
        )
    for name, network in networks.items():
        setattr(owner, name, nn.SyncBatchNorm.convert_sync_batchnorm(network))


class ReplicatedNetworks:
    """One DistributedDataParallel wrapper per trained network of a recipe.

    Each wrapper is set as a plain instance attribute of the recipe, in front of the
    registered submodule of the same name: ``train_step`` calls ``self.discriminator``
    and gets the wrapper, whose backward averages gradients over the processes, while
    the module tree (``state_dict``, ``to``, ``train``, EMA copies, checkpoints) keeps
    the bare networks, so checkpoints are the same with and without DDP.

    Networks are wrapped separately so that a generator update, which runs the frozen
    discriminator, syncs only the generator's gradients.  No buffer sync before a forward
    (``broadcast_buffers=False``): D scores real, fake and interpolated batches in one
    step, and a buffer broadcast before each forward would overwrite BatchNorm statistics
    that autograd still needs; each process keeps its own running statistics (rank 0's
    are saved), as the GAN reference implementations do.  Gradient penalty and R1 differentiate D with respect
    to its input (``autograd.grad``, which runs none of DDP's hooks) and then backward
    once through the parameters, which DDP reduces as any other backward.
    """

    def __init__(self, recipe: nn.Module, networks: dict[str, nn.Module], device: torch.device):
        self.recipe = recipe
        device_ids = [device.index] if device.type == "cuda" else None
        # the constructor broadcasts rank 0's parameters and buffers: every process starts alike
        self.wrappers = {
            name: DistributedDataParallel(network, device_ids=device_ids, **NO_FORWARD_BUFFER_SYNC)
            for name, network in networks.items()
        }
        self.attach()

    def attach(self) -> None:
        self.recipe.__dict__.update(self.wrappers)

    def detach(self) -> None:
        for name in self.wrappers:
            self.recipe.__dict__.pop(name, None)

    @contextmanager
    def bare(self) -> Iterator[None]:
        """The bare networks, for work that rank 0 does alone (samples, evaluation): no collectives."""
        self.detach()
        try:
            yield
        finally:
            self.attach()


def append_weight_digest(folder: str, recipe: nn.Module, step: int) -> None:
    """Append ``<step> <sha256 of every parameter>`` to ``folder/rank<r>.txt``.

    Replicas that stay identical write identical files; buffers are left out, since each
    process keeps its own BatchNorm running statistics.
    """
    digest = hashlib.sha256()
    for name, parameter in recipe.named_parameters():
        digest.update(name.encode())
        digest.update(parameter.detach().cpu().contiguous().flatten().view(torch.uint8).numpy().tobytes())
    path = Path(folder) / f"rank{rank()}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as file:
        file.write(f"{step} {digest.hexdigest()}\n")
