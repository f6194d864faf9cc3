"""Whole-step CUDA graphs, the host's side: when they apply, the optimizers and pools they need, and the
plan / replay logic, driven on the CPU by a stand-in graph that re-runs the captured step.

The stand-in checks the contract a real graph relies on: a replayed step may read and write device
tensors only, so the recipe's host state (its counters, the pools' fill level) must not change inside
``run_step``.  Training through it must then equal eager training bit for bit.
"""

from __future__ import annotations

import copy
import traceback
from functools import partial

import pytest
import torch
from helpers import build_model, read_events, run_cli, tiny
from torch.utils._python_dispatch import TorchDispatchMode

from gantrain.errors import ConfigError
from gantrain.graphs import (
    CapturedSteps,
    graph_decision,
    plain_scheduler_state,
    plain_state_dict,
    prepare_optimizers,
)
from gantrain.labels import LabelsConfig
from gantrain.options import Precision
from gantrain.recipes.base import batch_size
from gantrain.recipes.image_pool import ImagePool
from gantrain.step import NonFiniteLoss, Step

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


class NoHostReads(TorchDispatchMode):
    """Fails on an operator that reads a device value back to the host (``.item()``, a tensor taken as a
    Python number, ``nonzero``): on CUDA it waits for the device, which a stream being captured refuses."""

    HOST_READS = ("aten._local_scalar_dense", "aten.nonzero", "aten.masked_select")

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if str(func).startswith(self.HOST_READS):
            # the optimizers' CPU code reads its step count; on CUDA they run fused and capturable
            callers = [frame.filename for frame in traceback.extract_stack()]
            assert any("torch/optim/" in caller for caller in callers), f"{func} reads a device value on the host"
        return func(*args, **(kwargs or {}))


class ReplayingGraph:
    """A CUDA graph's stand-in: capture runs the step once, replay runs it again and writes the results into
    the captured outputs; both fail if the step changes the recipe's host state or reads a device value on
    the host (which a capture refuses)."""

    executes_on_capture = True

    def __init__(self, recipe, pool=None):
        self.recipe = recipe
        self.replays = 0

    def capture(self, step):
        self.step = step
        self.outputs = self.run()
        return self.outputs

    def run(self):
        before = host_state(self.recipe)
        with NoHostReads():
            outputs = self.step()
        assert host_state(self.recipe) == before, "run_step changed host state, which a replayed graph cannot"
        return outputs

    def replay(self):
        self.replays += 1
        for name, value in self.run().items():
            self.outputs[name].copy_(value)

    def memory_pool(self):
        return None


def host_state(recipe) -> list:
    """The Python-side numbers of a recipe and its submodules (counters, pool fill levels)."""
    return [copy.deepcopy({k: v for k, v in vars(m).items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
            for m in recipe.modules()]


def test_graphs_apply_to_one_cuda_device_and_say_why_not_elsewhere():
    decide = partial(graph_decision, world_size=1, precision=Precision.fp32, supported=True,
                     skip_needs_device=False)
    assert decide("auto", CUDA) == (True, "on (each update pattern captured after 3 eager steps)")
    assert decide("True", CUDA)[0]  # Hydra passes true as a bool, which the str setting reads as "True"
    assert decide("false", CUDA) == (False, "off (device.cuda_graphs=false)")
    assert decide("auto", CPU) == (False, "off: the device is cpu, and graphs capture CUDA work")
    reasons = graph_decision("auto", CUDA, 2, Precision.fp16, False, True)[1]
    for fragment in ("torchrun", "fp16's gradient scaler", "not capturable", "on_nan=skip"):
        assert fragment in reasons
    with pytest.raises(ConfigError, match="device.cuda_graphs=true cannot capture this run: the device is cpu"):
        decide("true", CPU)
    with pytest.raises(ConfigError, match="device.cuda_graphs=sometimes is not a choice"):
        decide("sometimes", CUDA)


def test_the_start_up_log_says_why_a_cpu_run_trains_eagerly_and_true_is_refused(workdir):
    run_cli(*tiny("dcgan", "trainer.max_steps=1", "hydra.run.dir=run"), cwd=workdir)
    assert "CUDA graphs: off: the device is cpu" in (workdir / "run" / "train.log").read_text()
    refused = run_cli(*tiny("dcgan", "device.cuda_graphs=true"), cwd=workdir, check=False)
    assert refused.returncode == 2 and "device.cuda_graphs=true cannot capture this run" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_capturable_optimizers_take_the_rate_as_a_tensor_that_the_schedule_fills_and_checkpoints_keep_numbers():
    recipe = build_model("cyclegan", (3, 16, 16), partial(torch.optim.Adam, lr=2e-4), ngf=4, ndf=4, n_blocks=1,
                         n_epochs=1, n_epochs_decay=3)
    rmsprop = torch.optim.RMSprop([torch.nn.Parameter(torch.zeros(2))], lr=5e-5)
    optimizers = {**recipe.optimizers(), "critic": rmsprop}
    prepare_optimizers(optimizers, CPU)
    rates = [group["lr"] for optimizer in optimizers.values() for group in optimizer.param_groups]
    assert all(isinstance(rate, torch.Tensor) for rate in rates)
    assert all(group["capturable"] for optimizer in optimizers.values() for group in optimizer.param_groups)
    scheduler = recipe.schedulers()["generators"]
    rate = recipe.optimizers()["generators"].param_groups[0]["lr"]
    recipe.optimizers()["generators"].step()
    scheduler.step()
    assert recipe.optimizers()["generators"].param_groups[0]["lr"] is rate  # filled in place: a graph sees it
    assert float(rate) == pytest.approx(2e-4 * 3 / 4)
    saved = plain_state_dict(recipe.optimizers()["generators"])
    assert saved["param_groups"][0]["lr"] == pytest.approx(1.5e-4) and isinstance(saved["param_groups"][0]["lr"], float)
    assert all(isinstance(lr, float) for lr in plain_scheduler_state(scheduler)["_last_lr"])


def reference_pool(fakes_per_step, size, seed):
    """The reference's pool, with a Python list: what the planned pool must return."""
    torch.manual_seed(seed)
    images, returned = [], []
    for fakes in fakes_per_step:
        out = []
        for fake in fakes:
            if len(images) < size:
                images.append(fake.clone())
                out.append(fake)
            elif torch.rand(()) < 0.5:
                index = int(torch.randint(len(images), ()))
                out.append(images[index])
                images[index] = fake.clone()
            else:
                out.append(fake)
        returned.append(torch.stack(out))
    return returned


def test_the_planned_pool_returns_what_the_reference_pool_returns_from_the_same_draws():
    steps = [torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(n)) for n in range(12)]
    expected = reference_pool(steps, size=5, seed=7)
    pool = ImagePool(5)
    torch.manual_seed(7)
    for fakes, reference in zip(steps, expected):
        pool.plan(len(fakes), CPU)
        assert torch.equal(pool(fakes), reference)
    assert pool.count == 5 and pool.planned is False


MODELS = {
    "wgan": lambda: build_model("wgan", (3, 32, 32), torch.optim.RMSprop, ngf=4, ndf=4, n_critic=2,
                                long_critic_iterations=3, warmup_generator_steps=2),
    "dcgan": lambda: build_model("dcgan", (3, 32, 32), partial(torch.optim.Adam, fused=True), ngf=4, ndf=4,
                                 ema_decay=0.9),
    "cyclegan": lambda: build_model("cyclegan", (3, 32, 32), torch.optim.Adam, ngf=4, ndf=4, n_blocks=1,
                                    pool_size=3),
    "stargan": lambda: build_model("stargan", (3, 16, 16), torch.optim.Adam, ngf=4, ndf=4, n_blocks=1,
                                   n_layers_d=2, n_critic=2, labels=LabelsConfig(["a", "b", "c"], [], False)),
    "stargan_v2": lambda: build_model("stargan_v2", (3, 16, 16), torch.optim.Adam, latent_dim=4, style_dim=4,
                                      mapping_width=8, base_width=4, max_width=8, diversity_decay_steps=6,
                                      labels=LabelsConfig(["a", "b", "c"], [], False)),
}


def batches(model: str, count: int):
    generator = torch.Generator().manual_seed(1)
    for _ in range(count):
        if model == "cyclegan":
            yield {"A": torch.rand(2, 3, 32, 32, generator=generator), "B": torch.rand(2, 3, 32, 32, generator=generator)}
        elif model == "stargan":
            yield [torch.rand(4, 3, 16, 16, generator=generator), torch.randint(3, (4,), generator=generator)]
        elif model == "stargan_v2":
            images = [torch.rand(2, 3, 16, 16, generator=generator) for _ in range(3)]
            labels = [torch.randint(3, (2,), generator=generator) for _ in range(2)]
            yield {"image": images[0], "label": labels[0], "reference": images[1], "reference_2": images[2],
                   "reference_label": labels[1]}
        else:
            yield [torch.rand(4, 3, 32, 32, generator=generator) * 2 - 1]


def compiled(recipe):
    """The recipe with its compilable networks under torch.compile (aot_eager: dynamo and AOT autograd, no codegen)."""
    for network in recipe.compilable_networks():
        network.compile(backend="aot_eager")
    return recipe


MODELS["compiled dcgan"] = lambda: compiled(MODELS["dcgan"]())


@pytest.mark.parametrize("model", list(MODELS))
def test_training_through_replayed_plans_equals_eager_training(model):
    """Eager warm-up runs of each plan, capture, then replays from the static batch: the same weights, the same
    losses and the same host counters as eager steps (WGAN and StarGAN have two plans each).  Compiled networks
    compile in the warm-up runs and are captured like eager ones."""
    steps = 12
    torch._dynamo.reset()
    torch.manual_seed(0)
    eager = MODELS[model]()
    eager_step = Step(eager.optimizers(), torch.amp.GradScaler("cpu", enabled=False), defer_check=True)
    eager_losses = [eager.train_step(batch, eager_step) for batch in batches(model, steps)]

    torch.manual_seed(0)
    graphed = MODELS[model]()
    graphed_step = Step(graphed.optimizers(), torch.amp.GradScaler("cpu", enabled=False), defer_check=True)
    runner = CapturedSteps(graphed, graphed_step, CPU, graph_type=partial(ReplayingGraph, graphed), warmup=2)
    graphed_losses = []
    for batch in batches(model, steps):
        metrics = runner(batch, batch_size(batch))
        graphed_losses.append({name: value.clone() for name, value in metrics.items()})

    assert sum(entry.graph.replays for entry in runner.plans.values() if entry.graph) > 0
    if model.startswith("compiled"):
        assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # it did compile
    for name, tensor in eager.state_dict().items():
        if isinstance(tensor, torch.Tensor):
            assert torch.equal(graphed.state_dict()[name], tensor), name
    assert host_state(graphed) == host_state(eager)
    for ours, theirs in zip(graphed_losses, eager_losses, strict=True):
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[name], theirs[name]) for name in theirs)


def test_non_finite_losses_in_replayed_steps_are_counted_on_the_device_and_reported_with_their_step():
    torch.manual_seed(0)
    recipe = MODELS["dcgan"]()
    step = Step(recipe.optimizers(), torch.amp.GradScaler("cpu", enabled=False), defer_check=True)
    runner = CapturedSteps(recipe, step, CPU, graph_type=partial(ReplayingGraph, recipe), warmup=1)
    for number, batch in enumerate(batches("dcgan", 5), start=1):
        if number == 4:
            batch = [torch.full_like(batch[0], float("nan"))]
        step.begin_step(number)
        runner(batch, batch_size(batch))
    with pytest.raises(NonFiniteLoss) as raised:
        step.read_deferred()
    assert raised.value.step == 4 and raised.value.names == ["discriminator"]
    step.read_deferred()  # read and cleared


def test_the_cpu_training_log_reads_back_unchanged_with_graphs_off(workdir):
    run_cli(*tiny("wgan", "trainer.max_steps=4", "device.cuda_graphs=false", "hydra.run.dir=run"), cwd=workdir)
    scalars, _ = read_events(workdir / "run")
    assert sorted(scalars["loss/discriminator"]) == [2, 4]
    assert "CUDA graphs: off (device.cuda_graphs=false)" in (workdir / "run" / "train.log").read_text()
