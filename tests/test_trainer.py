"""Faults a long run meets: NaN losses, failed checkpoint writes, SIGKILL, dead data workers, changed configs,
unreadable or hostile checkpoints.  Each is injected; the run must lose at most the steps since its last
checkpoint and say what happened."""

from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers import read_events, run_cli, tiny
from torch import nn

from gantrain.checkpoint import load_checkpoint, save_checkpoint
from gantrain.config import DeviceConfig, TrainerConfig
from gantrain.errors import CheckpointError, TrainingError
from gantrain.trainer import Trainer


def poisoned_copy(run_dir: Path) -> Path:
    """The run's last checkpoint with NaN generator weights: the next loss is NaN."""
    state = load_checkpoint(run_dir)
    for name, value in state["recipe"].items():
        if name.startswith("generator.") and value.is_floating_point():
            value.fill_(float("nan"))
    path = run_dir / "checkpoints" / "poisoned.pt"
    save_checkpoint({k: v for k, v in state.items() if k != "format_version"}, path)
    return path


@pytest.fixture(scope="module")
def four_step_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny DCGAN run trained for 4 steps, once for this file's tests: each resumes a copy."""
    workdir = tmp_path_factory.mktemp("four_steps")
    run_cli(*tiny("dcgan", "trainer.max_steps=4", f"hydra.run.dir={workdir / 'run'}"), cwd=workdir)
    return workdir / "run"


@pytest.fixture
def run_dir(four_step_run: Path, workdir: Path) -> Path:
    """A copy of the 4-step run in this test's working directory."""
    return Path(shutil.copytree(four_step_run, workdir / "run"))


@pytest.mark.parametrize("check", ["update", "deferred"])
def test_training_that_diverges_stops_with_the_step_and_keeps_the_last_good_checkpoint(check, run_dir, workdir):
    good = (run_dir / "checkpoints" / "last.pt").read_bytes()
    poisoned = poisoned_copy(run_dir)
    # deferred: the run reads the flags at step 6, its logging cadence; update: before each update
    result = run_cli(*tiny("dcgan", "trainer.max_steps=8"), f"resume={poisoned}", f"trainer.nan_check={check}",
                     cwd=workdir, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "Training diverged at step 5: the discriminator loss is nan" in result.stderr
    assert "(step 4), is intact" in result.stderr and "trainer.on_nan=skip" in result.stderr
    assert (run_dir / "checkpoints" / "last.pt").read_bytes() == good

    skipped = run_cli(*tiny("dcgan", "trainer.max_steps=8"), f"resume={poisoned}", "trainer.on_nan=skip",
                      f"trainer.nan_check={check}", cwd=workdir)
    assert skipped.returncode == 0
    assert read_events(run_dir)[0]["health/skipped_updates"][8] == 8  # D and G, steps 5 to 8


def make_trainer(run_dir: Path) -> Trainer:
    return Trainer(TrainerConfig(), DeviceConfig(type="cpu"), run_dir, seed=0, run_record={"config": "", "choices": {}})


class TinyRecipe(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(2, 2)
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=0.1)

    def optimizers(self):
        return {"net": self.optimizer}

    def schedulers(self):
        return {}


def test_a_full_disk_stops_the_run_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    trainer, recipe = make_trainer(tmp_path), TinyRecipe()
    last = trainer.save(recipe, 5, keep=False)
    previous = last.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(TrainingError) as error:
        trainer.save(recipe, 10, keep=True)
    message = str(error.value)
    assert "No space left on device" in message and "(step 5), is intact" in message and "resume=" in message
    assert last.read_bytes() == previous and load_checkpoint(last)["step"] == 5
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.pt"]  # no half-written temporary left


def test_an_output_folder_that_cannot_hold_checkpoints_is_a_clear_error(workdir):
    run_dir = workdir / "run"
    run_dir.mkdir()
    (run_dir / "checkpoints").write_text("a file where the checkpoint folder should be")
    result = run_cli(*tiny("dcgan", "trainer.max_steps=4", f"hydra.run.dir={run_dir}"), cwd=workdir, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "Could not write the checkpoint" in result.stderr and "No checkpoint had been written yet" in result.stderr


def test_a_dead_data_worker_checkpoints_the_step_reached_and_says_how_to_resume(tmp_path):
    trainer, recipe = make_trainer(tmp_path), TinyRecipe()

    def dying_loader():
        raise RuntimeError("DataLoader worker (pid 4242) is killed by signal: Killed.")
        yield

    with pytest.raises(TrainingError, match="pid 4242.*lower trainer.num_workers"):
        trainer.next_batch(dying_loader(), recipe, 7)
    assert load_checkpoint(tmp_path)["step"] == 7


HUGE_SAVE = """
import sys, torch
from pathlib import Path
from gantrain.checkpoint import save_checkpoint
print("writing", flush=True)
save_checkpoint({"weights": torch.randn(64, 1024, 1024), "step": 2}, Path(sys.argv[1]))
"""


def test_sigkill_during_a_checkpoint_write_leaves_the_previous_one_loadable(tmp_path):
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint({"step": 1, "weights": torch.ones(3)}, path)
    writer = subprocess.Popen([sys.executable, "-c", HUGE_SAVE, str(path)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    deadline = time.monotonic() + 60
    while not path.with_name(".last.pt.tmp").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert writer.returncode == -signal.SIGKILL
    assert load_checkpoint(path)["step"] == 1
    save_checkpoint({"step": 3}, path)  # the next save replaces the leftover temporary file
    assert load_checkpoint(path)["step"] == 3


def test_sigkill_at_random_moments_never_costs_more_than_the_last_checkpoint(workdir):
    run_dir = workdir / "run"
    args = [*tiny("dcgan", "trainer.max_steps=40", "trainer.checkpoint_every=1", "trainer.sample_every=100",
                  "trainer.progress=false")]
    rng = random.Random(0)
    command = [sys.executable, "-m", "gantrain", *args]
    for attempt in range(3):
        extra = [f"hydra.run.dir={run_dir}"] if attempt == 0 else [f"resume={run_dir}"]
        process = subprocess.Popen([*command, *extra], cwd=workdir, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not (run_dir / "checkpoints" / "last.pt").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert load_checkpoint(run_dir)["step"] >= 1
    run_cli(*args, f"resume={run_dir}", cwd=workdir)
    assert load_checkpoint(run_dir)["step"] == 40


def test_resume_with_other_settings_is_refused_with_the_differences(run_dir, workdir):
    refused = run_cli(*tiny("dcgan", "trainer.max_steps=8", "model.ngf=16", "dataset.image_size=64"),
                      f"resume={run_dir}", cwd=workdir, check=False)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "model.ngf: 8 -> 16" in refused.stderr and "dataset.image_size: 32 -> 64" in refused.stderr
    assert "resume_allow_changes=true" in refused.stderr
    # allowed, a change of network shape still cannot load the weights: said so, not a traceback
    forced = run_cli(*tiny("dcgan", "trainer.max_steps=8", "model.ngf=16"), f"resume={run_dir}",
                     "resume_allow_changes=true", cwd=workdir, check=False)
    assert forced.returncode != 0 and "Traceback" not in forced.stderr
    assert "do not fit the configured ones" in forced.stderr
    # trainer settings may change: this trains on to step 8
    run_cli(*tiny("dcgan", "trainer.max_steps=8"), f"resume={run_dir}", cwd=workdir)
    assert load_checkpoint(run_dir)["step"] == 8


class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (partial(torch.save, {"format_version": 1, "step": RunsCode()}), "Refusing to load"),
        (lambda path: path.write_bytes(b""), "truncated or corrupt"),
        (lambda path: path.write_bytes(os.urandom(100)), "truncated or corrupt"),
        (partial(torch.save, {"format_version": 99, "step": 1}), "newer gantrain"),
        (partial(torch.save, {"step": 1}), "not a gantrain checkpoint"),
    ],
    ids=["pickled code", "empty", "garbage", "newer format", "foreign"],
)
def test_unusable_checkpoints_are_refused_without_running_code(write, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "last.pt"
    write(path)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_a_truncated_checkpoint_is_refused(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"step": 1, "weights": torch.ones(1000)}, path)
    path.write_bytes(path.read_bytes()[:-2000])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=wgan_gp", "model.n_critic=0"], "model.n_critic=0"),
        (["model=stargan", "dataset=shapes_attributes", "model.n_critic=0"], "must be at least 1"),
        (["model=pix2pix", "dataset=shapes_paired", "model.generator=unet_256"], "unet_256 needs images"),
        (["model=dcgan", "trainer.batch_size=0"], "trainer.batch_size must be at least 1"),
    ],
    ids=["wgan_gp n_critic 0", "stargan n_critic 0", "unet_256 on 32 px", "batch 0"],
)
def test_impossible_combinations_stop_with_one_paragraph(overrides, message, workdir):
    result = run_cli(*overrides, "device=cpu", "trainer.max_steps=1", "dataset.num_samples=64", cwd=workdir,
                     check=False)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not list(workdir.rglob("last.pt"))  # nothing half-written


@pytest.fixture
def faces_with_a_truncated_file(tmp_path) -> Path:
    from PIL import Image

    folder = tmp_path / "faces"
    folder.mkdir()
    for index in range(16):
        Image.new("RGB", (40, 40), (index * 15, 100, 200)).save(folder / f"{index:02d}.png")
    broken = folder / "07.png"
    broken.write_bytes(broken.read_bytes()[:60])
    return folder


@pytest.mark.parametrize(("workers", "in_memory"), [(0, "false"), (2, "false"), (0, "auto")])
def test_bad_image_files_fail_with_the_file_name_or_are_skipped_and_counted(workers, in_memory,
                                                                            faces_with_a_truncated_file, workdir):
    data = ["dataset=folder", f"dataset.path={faces_with_a_truncated_file}", "trainer.batch_size=4",
            f"trainer.num_workers={workers}", f"dataset.in_memory={in_memory}", "model.ngf=8", "model.ndf=8", "device=cpu", "trainer.max_steps=8",
            "trainer.log_every=4", "trainer.sample_every=100", "trainer.num_samples=4"]
    failed = run_cli("model=dcgan", *data, f"hydra.run.dir={workdir / 'fail'}", cwd=workdir, check=False)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert "07.png' cannot be used: it is truncated" in failed.stderr and "trainer.bad_files=skip" in failed.stderr

    run_cli("model=dcgan", *data, "trainer.bad_files=skip", f"hydra.run.dir={workdir / 'skip'}", cwd=workdir)
    skipped = read_events(workdir / "skip")[0]["data/skipped_files"]
    assert skipped[8] == 2  # two epochs of 16 images, the broken one once in each
    log = (workdir / "skip" / "train.log").read_text()
    assert "Skipped the unreadable image file" in log
    if in_memory == "auto":  # 16 images fit: kept in memory, the broken one skipped at start-up with a warning
        assert "dataset.in_memory=auto: on. 16 images of 3x64x64 uint8" in log
        assert "Skipped at start-up (trainer.bad_files=skip): The image file" in log


@pytest.mark.parametrize("kept_in_memory", [False, True])
def test_a_loader_bottleneck_is_told_once_with_the_settings_that_help(kept_in_memory, caplog):
    trainer = SimpleNamespace(cfg=SimpleNamespace(num_workers=0))
    dataset = SimpleNamespace(batch_transform=object() if kept_in_memory else None)
    run = SimpleNamespace(told_data_wait=False, tick_step=0, start_step=0, dataset=dataset)
    Trainer.tell_data_wait(trainer, run, 0.3)  # the first interval includes the start: not a bottleneck yet
    run.tick_step = 100
    Trainer.tell_data_wait(trainer, run, 0.03)  # under 5%
    assert not caplog.records
    Trainer.tell_data_wait(trainer, run, 0.2)
    Trainer.tell_data_wait(trainer, run, 0.4)
    (warning,) = caplog.records
    assert "waited for data 20% of the time" in warning.getMessage()
    assert "trainer.num_workers=2" in warning.getMessage()
    assert ("dataset.in_memory=true" in warning.getMessage()) is not kept_in_memory
