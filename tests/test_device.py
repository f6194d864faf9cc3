"""The fast path on the CPU: bf16 and fp16 autocast, torch.compile, channels_last, and the fp16 scaler.

Every family whose networks or step differ trains through the real CLI in bf16 with compile
and channels_last, and the models that stress the fp16 scaler in fp16, with finite losses;
the gradient scaler is shared correctly by several optimizers; penalties stay right in fp16;
compiled networks do not recompile as training goes on.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch
from helpers import (
    ALL_MODELS,
    CYCLEGAN,
    assert_same_training,
    read_events,
    run_cli,
    write_images,
)
from omegaconf import OmegaConf

from gantrain.checkpoint import load_checkpoint
from gantrain.device import measured_choice, resolve_precision
from gantrain.options import DeviceType, Precision

FAST_SETTINGS = {
    # bf16 with every other fast option; aot_eager captures the same graphs as inductor without
    # its minutes of C++ code generation on two cores
    "bf16_compiled_channels_last": ["device.precision=bf16", "device.compile=true",
                                    "device.compile_backend=aot_eager", "device.channels_last=true"],
    "fp16_scaler": ["device.precision=fp16"],
}


# fp16 where the scaler has most to do: a penalty's double backward, two optimizers, R1 and two D updates
FP16_MODELS = ("dcgan", "wgan_gp", "cyclegan", "stargan_v2")
# compiled: every family whose networks or step differ (DCGAN's networks compile in the inductor test,
# WGAN's are DCGAN's); CycleGAN compiles in the recompilation test below
COMPILED_MODELS = ("gan", "wgan_gp", "sngan", "pix2pix", "stargan", "stargan_v2")


def assert_trained_in(run_dir, precision: str) -> None:
    """Finite losses and weights after the run, the data-wait share logged, the scaler kept only for fp16."""
    scalars, _ = read_events(run_dir)
    last = {tag: values[max(values)] for tag, values in scalars.items() if tag.startswith("loss/")}
    assert last and all(math.isfinite(value) for value in last.values()), last
    assert 0 <= scalars["perf/data_wait_share"][4] < 1
    state = load_checkpoint(run_dir)
    weights = [value for value in state["recipe"].values()  # tensors, and the recipes' extra state
               if isinstance(value, torch.Tensor) and value.is_floating_point()]
    assert all(torch.isfinite(tensor).all() for tensor in weights)
    if precision == "fp16":  # the scaler's state is kept for an exact resume
        assert 0 < state["scaler"]["scale"] <= 2.0**16
    else:
        assert state["scaler"] == {}  # a disabled scaler


@pytest.mark.parametrize(
    ("model", "setting"),
    [(model, "bf16_compiled_channels_last") for model in COMPILED_MODELS]
    + [(model, "fp16_scaler") for model in FP16_MODELS],
)
def test_every_model_trains_in_the_fast_settings(model, setting, workdir):
    result = run_cli(*ALL_MODELS[model], *FAST_SETTINGS[setting], "trainer.max_steps=4", "trainer.log_every=1",
                     "hydra.run.dir=run", cwd=workdir)
    precision = "bf16" if setting.startswith("bf16") else "fp16"
    assert f"on cpu ({precision})" in result.stdout
    assert_trained_in(workdir / "run", precision)


def test_compiled_networks_do_not_recompile_as_training_goes_on(workdir):
    """A few variants are compiled in the first steps (fp32 inputs for the cycle, frozen discriminators,
    sampling without grad at step 2), none after step 4, when every kind of step has run once."""
    command = [sys.executable, "-m", "gantrain", *ALL_MODELS["cyclegan"], *FAST_SETTINGS["bf16_compiled_channels_last"],
               "trainer.max_steps=8", "trainer.log_every=1", "trainer.sample_every=2", "hydra.run.dir=run"]
    env = {**os.environ, "TORCH_LOGS": "recompiles", "PYTHONUNBUFFERED": "1"}
    # one stream, so that the recompilation messages stay in order with the progress lines
    result = subprocess.run(command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout
    first_steps, separator, later_steps = result.stdout.partition("step 4 of 8")
    assert separator, result.stdout
    assert "Recompiling function" in first_steps
    assert "Recompiling function" not in later_steps, later_steps
    assert_trained_in(workdir / "run", "bf16")


def test_inductor_compiles_a_model_that_then_trains(workdir):
    run_cli(*ALL_MODELS["dcgan"], "device.compile=true", "device.precision=bf16", "trainer.max_steps=2",
            "hydra.run.dir=run", cwd=workdir)
    scalars, _ = read_events(workdir / "run")
    assert math.isfinite(scalars["loss/generator"][2])


def test_an_unknown_compile_backend_is_a_clear_error_at_start_up(workdir):
    result = run_cli(*ALL_MODELS["dcgan"], "device.compile=true", "device.compile_backend=inductr", cwd=workdir,
                     check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "device.compile_backend=inductr" in result.stderr and "inductor" in result.stderr
    assert not list(workdir.rglob("events.out.tfevents.*"))  # stopped before training


@pytest.mark.parametrize(
    ("setting", "faster_on", "expected"),
    [(None, [], False), (None, [DeviceType.cpu], True), (None, [DeviceType.cuda], False),
     (False, [DeviceType.cpu], False), (True, [], True)],
)
def test_channels_last_and_compile_follow_the_models_measurement_unless_set(setting, faster_on, expected):
    assert measured_choice(setting, faster_on, torch.device("cpu")) is expected


def test_cyclegan_compiles_on_cuda_by_default_and_trains_eagerly_on_the_cpu(workdir):
    """Measured on an H200 (docs/performance.md): inductor inside the captured step, 1.47x the uncompiled graphs."""
    device = OmegaConf.create(run_cli("model=cyclegan", "dataset=shapes_unpaired", "--cfg", "job", cwd=workdir).stdout).device
    assert device.compile is None
    assert measured_choice(device.compile, device.compile_faster_on, torch.device("cuda"))
    assert not measured_choice(device.compile, device.compile_faster_on, torch.device("cpu"))


def test_the_default_precision_is_bf16_where_native(workdir):
    result = run_cli(*ALL_MODELS["dcgan"], "trainer.max_steps=1", "hydra.run.dir=run", cwd=workdir)
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert f"on cpu ({'bf16' if native else 'fp32'})" in result.stdout


def test_an_in_memory_folder_dataset_trains_and_resumes_exactly(workdir):
    """Random crops and flips drawn on the batch come from the checkpointed RNG, as per-item ones do."""
    root = workdir / "day2night"
    for split, count in (("trainA", 6), ("trainB", 4), ("testA", 2), ("testB", 2)):
        write_images(root / split, count, (48, 40), 200 if split.endswith("A") else 30)
    args = [*CYCLEGAN, "dataset=unaligned", f"dataset.path={root}", "dataset.image_size=32", "dataset.load_size=40",
            "dataset.in_memory=true", "trainer.batch_size=2", "trainer.log_every=1"]
    run_cli(*args, "trainer.max_steps=6", "hydra.run.dir=straight", cwd=workdir)
    run_cli(*args, "trainer.max_steps=4", "hydra.run.dir=resumed", cwd=workdir)  # 3 steps an epoch
    run_cli("resume=resumed", "trainer.max_steps=6", cwd=workdir)
    assert_same_training(workdir / "straight", workdir / "resumed")
    scalars, _ = read_events(workdir / "straight")
    assert sorted(scalars["perf/data_wait_share"]) == [1, 2, 3, 4, 5, 6]


def test_auto_precision_is_bf16_on_native_cpus_and_on_cuda_cards_whose_step_is_captured(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision(Precision.fp32, cpu) == Precision.fp32
    assert resolve_precision(Precision.fp16, cpu) == Precision.fp16
    native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    assert resolve_precision(Precision.auto, cpu) == (Precision.bf16 if native else Precision.fp32)
    # measured (docs/performance.md): an eager CUDA step is host-bound and bf16's casts cost more than they
    # save (H100); a replayed graph is card-bound and bf16 is 1.13-1.33x of TF32 (H200)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert resolve_precision(Precision.auto, cuda) == Precision.fp32
    assert resolve_precision(Precision.auto, cuda, captured=True) == Precision.bf16
    assert resolve_precision(Precision.fp32, cuda, captured=True) == Precision.fp32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)  # before Ampere
    assert resolve_precision(Precision.auto, cuda, captured=True) == Precision.fp32
    assert resolve_precision(Precision.bf16, cuda) == Precision.bf16
