"""The fast path on the CPU: bf16 and fp16 autocast, torch.compile, channels_last, and the fp16 scaler.

Every model trains through the real CLI in bf16 with compile and channels_last, and the
models that stress the fp16 scaler in fp16, with finite losses; the gradient scaler is
shared correctly by several optimizers; penalties stay right in fp16;
compiled networks do not recompile as training goes on.
"""

from __future__ import annotations

import math
import os

import pytest
import torch
from conftest import read_events, run_cli, tiny
from test_cli import assert_same_training
from test_multidomain_cli import SHAPES, STARGAN, STARGAN_V2
from test_translation_cli import CYCLEGAN, PIX2PIX, write_images

from gantrain.checkpoint import load_checkpoint
from gantrain.config import DeviceConfig
from gantrain.device import resolve_channels_last
from gantrain.losses import r1_penalty
from gantrain.options import DeviceType
from gantrain.step import NonFiniteLoss, Step

# every model, tiny, on the embedded data (tests/test_cuda.py runs the same on a GPU)
MODELS = {
    **{model: tiny(model) for model in ("gan", "dcgan", "wgan", "wgan_gp")},
    "cyclegan": [*CYCLEGAN, "dataset=shapes_unpaired", "dataset.num_samples=64"],
    "pix2pix": [*PIX2PIX, "dataset=shapes_paired", "dataset.num_samples=64"],
    "stargan": [*STARGAN, "dataset=shapes_attributes", *SHAPES],
    "stargan_v2": [*STARGAN_V2, "dataset=shapes_domains", *SHAPES],
}
FAST_SETTINGS = {
    # bf16 with every other fast option; aot_eager captures the same graphs as inductor without
    # its minutes of C++ code generation on two cores
    "bf16_compiled_channels_last": ["device.precision=bf16", "device.compile=true",
                                    "device.compile_backend=aot_eager", "device.channels_last=true"],
    "fp16_scaler": ["device.precision=fp16"],
}


# fp16 where the scaler has most to do: a penalty's double backward, two optimizers, R1 and two D updates
FP16_MODELS = ("dcgan", "wgan_gp", "cyclegan", "stargan_v2")


@pytest.mark.parametrize(
    ("model", "setting"),
    [(model, "bf16_compiled_channels_last") for model in MODELS] + [(model, "fp16_scaler") for model in FP16_MODELS],
)
def test_every_model_trains_in_the_fast_settings(model, setting, workdir):
    result = run_cli(*MODELS[model], *FAST_SETTINGS[setting], "trainer.max_steps=4", "trainer.log_every=1",
                     "hydra.run.dir=run", cwd=workdir)
    precision = "bf16" if setting.startswith("bf16") else "fp16"
    assert f"on cpu ({precision})" in result.stdout
    scalars, _ = read_events(workdir / "run")
    last = {tag: values[max(values)] for tag, values in scalars.items() if tag.startswith("loss/")}
    assert last and all(math.isfinite(value) for value in last.values()), last
    assert 0 <= scalars["perf/data_wait_share"][4] < 1
    state = load_checkpoint(workdir / "run")
    weights = [value for value in state["recipe"].values()  # tensors, and the recipes' extra state
               if isinstance(value, torch.Tensor) and value.is_floating_point()]
    assert all(torch.isfinite(tensor).all() for tensor in weights)
    if precision == "fp16":  # the scaler's state is kept for an exact resume
        assert 0 < state["scaler"]["scale"] <= 2.0**16
    else:
        assert state["scaler"] == {}  # a disabled scaler


def recompilations(result) -> int:
    return (result.stdout + result.stderr).count("Recompiling function")


def test_compiled_networks_do_not_recompile_as_training_goes_on(workdir):
    args = [*MODELS["cyclegan"], *FAST_SETTINGS["bf16_compiled_channels_last"], "trainer.sample_every=2"]
    env = {**os.environ, "TORCH_LOGS": "recompiles"}
    short = run_cli(*args, "trainer.max_steps=2", "hydra.run.dir=short", cwd=workdir, env=env)
    long = run_cli(*args, "trainer.max_steps=8", "hydra.run.dir=long", cwd=workdir, env=env)
    # a few variants once (fp32 inputs for the cycle, frozen discriminators, sampling without grad)
    assert recompilations(short) > 0
    assert recompilations(long) == recompilations(short)


def test_inductor_compiles_a_model_that_then_trains(workdir):
    run_cli(*MODELS["dcgan"], "device.compile=true", "device.precision=bf16", "trainer.max_steps=2",
            "hydra.run.dir=run", cwd=workdir)
    scalars, _ = read_events(workdir / "run")
    assert math.isfinite(scalars["loss/generator"][2])


def test_an_unknown_compile_backend_is_a_clear_error_at_start_up(workdir):
    result = run_cli(*MODELS["dcgan"], "device.compile=true", "device.compile_backend=inductr", cwd=workdir,
                     check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "device.compile_backend=inductr" in result.stderr and "inductor" in result.stderr
    assert not list(workdir.rglob("events.out.tfevents.*"))  # stopped before training


def two_optimizer_step(scale: float = 2.0**16) -> tuple[Step, torch.nn.Linear, torch.nn.Linear]:
    torch.manual_seed(0)
    first, second = torch.nn.Linear(4, 1), torch.nn.Linear(4, 1)
    optimizers = {"first": torch.optim.SGD(first.parameters(), lr=0.1),
                  "second": torch.optim.SGD(second.parameters(), lr=0.1)}
    return Step(optimizers, torch.amp.GradScaler("cpu", init_scale=scale)), first, second


def test_one_scaler_serves_two_optimizers_and_skips_only_the_overflowed_update():
    step, first, second = two_optimizer_step()
    x = torch.ones(2, 4)
    first_before, second_before = first.weight.clone(), second.weight.clone()
    step("first", (first(x) * 1e35).sum())  # x 65536: the gradients overflow to inf
    step("second", second(x).sum())
    step.end_iteration()
    assert torch.equal(first.weight, first_before)  # skipped
    assert not torch.equal(second.weight, second_before)  # applied, unscaled: -0.1 * 2 per weight
    assert torch.allclose(second.weight, second_before - 0.2)
    assert step.scaler.get_scale() == 2.0**15  # halved once for the iteration


def test_an_optimizer_stepped_twice_in_one_iteration_updates_the_scale_in_between():
    step, first, _ = two_optimizer_step()
    x = torch.ones(2, 4)
    before = first.weight.clone()
    step("first", first(x).sum())
    step("first", first(x).sum())  # StarGAN v2's second discriminator update: GradScaler alone would refuse
    step.end_iteration()
    assert torch.allclose(first.weight, before - 0.4)


def test_a_non_finite_fp16_loss_is_an_overflow_until_the_scale_reaches_one():
    step, first, _ = two_optimizer_step(scale=4.0)
    x = torch.ones(2, 4)
    before = first.weight.clone()
    for expected_scale in (2.0, 1.0):
        step("first", first(x).sum() * float("inf"))
        step.end_iteration()
        assert step.scaler.get_scale() == expected_scale
    assert torch.equal(first.weight, before)
    with pytest.raises(NonFiniteLoss, match="first"):  # at scale 1 it is divergence, not overflow
        step("first", first(x).sum() * float("inf"))


def test_r1_gradients_do_not_underflow_in_fp16_when_scaled():
    real = torch.ones(2, 8, requires_grad=True)
    weight = torch.tensor(1e-4, dtype=torch.half)

    def scores() -> torch.Tensor:
        """D(x) = 1e-4 (1e-4 x) in fp16: dD/dx = 1e-8, below fp16's smallest number (6e-8)."""
        return (real.half() * weight * weight).sum(1)

    exact = 0.5 * 8 * (weight.item() ** 2) ** 2  # 0.5 * the squared gradient norm, per sample
    assert r1_penalty(scores(), real).item() == 0.0  # the gradient underflowed: no penalty at all
    assert r1_penalty(scores(), real, torch.tensor(2.0**10)).item() == pytest.approx(exact, rel=1e-2)


@pytest.mark.parametrize(
    ("setting", "faster_on", "expected"),
    [(None, [], False), (None, [DeviceType.cpu], True), (None, [DeviceType.cuda], False),
     (False, [DeviceType.cpu], False), (True, [], True)],
)
def test_channels_last_follows_the_models_measurement_unless_set(setting, faster_on, expected):
    config = DeviceConfig(channels_last=setting, channels_last_faster_on=faster_on)
    assert resolve_channels_last(config, torch.device("cpu")) is expected


def test_the_default_precision_is_bf16_where_native(workdir):
    result = run_cli(*MODELS["dcgan"], "trainer.max_steps=1", "hydra.run.dir=run", cwd=workdir)
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
