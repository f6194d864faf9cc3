"""Training in two CPU processes (torchrun, gloo) through the real command line, and DDP under penalties."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers import tiny
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from gantrain.checkpoint import load_checkpoint
from gantrain.losses import gradient_penalty, r1_penalty
from gantrain.trainer import EpochShuffle


def torchrun(*args: str, cwd: Path) -> None:
    """``torchrun --nproc_per_node=2 -m gantrain args`` as a user types it (gloo on the CPU)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "gantrain", *args, "trainer.progress=false"]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def digests(folder: Path, rank: int) -> dict[int, str]:
    lines = (folder / f"rank{rank}.txt").read_text().split("\n")
    return {int(step): digest for step, digest in (line.split() for line in lines if line)}


def test_two_processes_train_one_run_with_identical_replicas_and_resume_exactly(workdir):
    args = tiny("dcgan", "trainer.checkpoint_every=2")
    torchrun(*args, "trainer.max_steps=6", "trainer.weight_digests=straight_digests", cwd=workdir)
    (run_dir,) = (workdir / "outputs" / "dcgan" / "shapes").iterdir()  # rank 1 followed rank 0
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
    assert "batch 8 per process x 2 processes = 16" in (run_dir / "train.log").read_text()
    state = load_checkpoint(run_dir)
    assert state["step"] == 6 and len(state["rng"]["ranks"]) == 2
    straight = digests(workdir / "straight_digests", 0)
    assert sorted(straight) == [1, 2, 3, 4, 5, 6]
    assert digests(workdir / "straight_digests", 1) == straight  # the replicas never differed

    torchrun(*args, "trainer.max_steps=4", "hydra.run.dir=stopped", "trainer.weight_digests=resumed", cwd=workdir)
    torchrun("resume=stopped", "trainer.max_steps=6", "trainer.weight_digests=resumed", cwd=workdir)
    for rank in (0, 1):  # both processes continue exactly where the uninterrupted run went
        assert digests(workdir / "resumed", rank) == straight


def test_epoch_shuffle_gives_each_process_a_disjoint_resumable_share():
    shares = [list(EpochShuffle(11, seed=3, epoch=2, rank=rank, world_size=2)) for rank in (0, 1)]
    assert len(shares[0]) == len(shares[1]) == 5 and not set(shares[0]) & set(shares[1])
    assert list(EpochShuffle(11, seed=3, epoch=2, start=2, rank=1, world_size=2)) == shares[1][2:]
    whole = list(EpochShuffle(11, seed=3, epoch=2))
    assert sorted(whole) == list(range(11)) and shares[0] == whole[0:10:2]


def critic() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.GroupNorm(1, 4), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(64, 1))


def penalised_critic_loss(network: nn.Module, real: torch.Tensor, fake: torch.Tensor, alpha: torch.Tensor):
    """Three forwards (real, fake, interpolates), a gradient penalty and R1, then one backward."""
    real = real.detach().requires_grad_(True)
    real_scores = network(real)
    return (network(fake).mean() - real_scores.mean() + 10 * gradient_penalty(network, real, fake, alpha)
            + r1_penalty(real_scores, real))


def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return (torch.randn(8, 3, 8, 8, generator=generator), torch.randn(8, 3, 8, 8, generator=generator),
            torch.rand(8, 1, 1, 1, generator=generator))


def half_batch_gradients(rank: int, store: str, output: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    network = DistributedDataParallel(critic(), broadcast_buffers=False)
    real, fake, alpha = (tensor[rank * 4 : rank * 4 + 4] for tensor in batch())
    penalised_critic_loss(network, real, fake, alpha).backward()
    if rank == 0:
        torch.save([parameter.grad for parameter in network.parameters()], output)
    dist.destroy_process_group()


def test_ddp_gradients_of_penalised_critic_equal_the_whole_batch(tmp_path):
    """Gradient penalty and R1 differentiate D twice; DDP's averaged gradients must still be exact."""
    output = tmp_path / "grads.pt"
    mp.spawn(half_batch_gradients, args=(str(tmp_path / "store"), str(output)), nprocs=2)
    network = critic()
    penalised_critic_loss(network, *batch()).backward()
    for distributed, whole in zip(torch.load(output), network.parameters()):
        torch.testing.assert_close(distributed, whole.grad)
