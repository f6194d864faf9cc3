"""Helpers to run the real command line and read back what a run wrote."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gantrain.errors import DatasetError

# Small networks and batches: every model trains through the real CLI in seconds.
TINY = [
    "device=cpu",
    "trainer.batch_size=8",
    "trainer.log_every=2",
    "trainer.sample_every=4",
    "trainer.checkpoint_every=4",
    "trainer.num_samples=16",
    "dataset.num_samples=256",
]
TINY_MODEL = {
    "gan": ["model.g_hidden=[64,64]", "model.d_hidden=[64,32]"],
    "dcgan": ["model.ngf=8", "model.ndf=8"],
    "wgan": ["model.ngf=8", "model.ndf=8", "model.n_critic=2", "model.long_critic_iterations=0"],
    "wgan_gp": ["model.ngf=8", "model.ndf=8", "model.n_critic=2"],
}


def tiny(model: str, *extra: str) -> list[str]:
    return [f"model={model}", *TINY, *TINY_MODEL[model], *extra]


def run_cli(*args: str, cwd: Path, module: str = "gantrain", check: bool = True, env: dict[str, str] | None = None,
            **kwargs) -> subprocess.CompletedProcess:
    """``python -m <module> args`` in ``cwd``, as a user would type it (in ``env``, default this process's)."""
    env = {k: v for k, v in (os.environ if env is None else env).items() if k != "HYDRA_FULL_ERROR"}
    result = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False, **kwargs
    )
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def read_events(run_dir: Path) -> tuple[dict[str, dict[int, float]], dict[str, list[int]]]:
    """All scalars (tag -> step -> value) and image tags (tag -> steps) of a run directory.

    Read as TensorBoard reads it: every event file in order, with the steps a resumed
    run purged dropped.
    """
    assert list(run_dir.glob("events.out.tfevents.*")), f"no TensorBoard event files in {run_dir}"
    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0}).Reload()
    scalars = {tag: {e.step: e.value for e in accumulator.Scalars(tag)} for tag in accumulator.Tags()["scalars"]}
    images = {tag: [e.step for e in accumulator.Images(tag)] for tag in accumulator.Tags()["images"]}
    return scalars, images


def expected_error(call, *fragments: str) -> str:
    """``call`` raises a one-paragraph DatasetError that contains every fragment; its message."""
    with pytest.raises(DatasetError) as raised:
        call()
    message = str(raised.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty working directory outside the repository."""
    path = tmp_path / "work"
    path.mkdir()
    return path
