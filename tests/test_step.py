"""Step: backward and update of named optimizers with one gradient scaler, and the checks of non-finite losses."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gantrain.errors import ConfigError
from gantrain.losses import r1_penalty
from gantrain.options import NonFiniteCheck
from gantrain.step import NonFiniteLoss, Step, defers_nan_check


def linear_step(skip: bool = False) -> tuple[nn.Linear, Step]:
    network = nn.Linear(2, 1)
    return network, Step({"net": torch.optim.SGD(network.parameters(), lr=0.1)},
                         torch.amp.GradScaler("cpu", enabled=False), skip_non_finite=skip)


def test_a_nan_loss_is_stopped_before_it_reaches_the_weights():
    network, step = linear_step()
    before = [p.clone() for p in network.parameters()]
    with pytest.raises(NonFiniteLoss, match="the net loss is nan"):
        step("net", network(torch.ones(1, 2)).sum() * float("nan"))
    assert all(torch.equal(a, b) for a, b in zip(before, network.parameters()))


def test_the_skip_policy_drops_non_finite_updates_and_counts_them():
    network, step = linear_step(skip=True)
    before = [p.clone() for p in network.parameters()]
    step("net", network(torch.ones(1, 2)).sum() * float("inf"))
    assert step.skipped == 1 and all(torch.equal(a, b) for a, b in zip(before, network.parameters()))
    step("net", network(torch.ones(1, 2)).sum())
    assert step.skipped == 1 and not torch.equal(before[0], network.weight)


def deferred_linear_step(skip: bool = False) -> tuple[nn.Linear, Step]:
    network = nn.Linear(2, 1)
    return network, Step({"net": torch.optim.Adam(network.parameters(), lr=0.1, fused=True)},
                         torch.amp.GradScaler("cpu", enabled=False), skip_non_finite=skip, defer_check=True)


def test_a_deferred_check_skips_the_update_on_the_device_and_reports_its_step_when_read():
    network, step = deferred_linear_step()
    before = [p.clone() for p in network.parameters()]
    step.step_number = 7
    step("net", network(torch.ones(1, 2)).sum() * float("nan"))  # nothing read yet: no error, no host wait
    assert all(torch.equal(a, b) for a, b in zip(before, network.parameters()))
    assert [float(state["step"]) for state in step.optimizers["net"].state.values()] == [0.0, 0.0]  # Adam's too
    step.step_number = 8
    step("net", network(torch.ones(1, 2)).sum())
    assert not torch.equal(before[0], network.weight)  # a finite loss still trains
    with pytest.raises(NonFiniteLoss, match="the net loss is nan") as raised:
        step.read_deferred()
    assert raised.value.step == 7
    step.read_deferred()  # each flag is read once


def test_a_deferred_check_under_the_skip_policy_counts_the_skipped_updates():
    network, step = deferred_linear_step(skip=True)
    for factor in (float("inf"), 1.0, float("nan")):
        step("net", network(torch.ones(1, 2)).sum() * factor)
    step.read_deferred()
    assert step.skipped == 2 and all(p.isfinite().all() for p in network.parameters())


def test_the_nan_check_is_deferred_on_a_single_gpu_with_fused_adam_and_explains_when_it_cannot_be():
    network = nn.Linear(2, 1)
    fused, plain = [torch.optim.Adam(network.parameters(), fused=True)], [torch.optim.RMSprop(network.parameters())]
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert defers_nan_check(NonFiniteCheck.auto, cuda, fused, gradient_scaling=False, world_size=1)
    assert not defers_nan_check(NonFiniteCheck.auto, cpu, fused, gradient_scaling=False, world_size=1)
    assert not defers_nan_check(NonFiniteCheck.auto, cuda, plain, gradient_scaling=False, world_size=1)
    assert not defers_nan_check(NonFiniteCheck.auto, cuda, fused, gradient_scaling=True, world_size=1)
    assert not defers_nan_check(NonFiniteCheck.auto, cuda, fused, gradient_scaling=False, world_size=2)
    assert not defers_nan_check(NonFiniteCheck.update, cuda, fused, gradient_scaling=False, world_size=1)
    assert defers_nan_check(NonFiniteCheck.deferred, cpu, fused, gradient_scaling=False, world_size=1)
    with pytest.raises(ConfigError, match="needs fused Adam.*RMSprop has no fused form"):
        defers_nan_check(NonFiniteCheck.deferred, cuda, plain, gradient_scaling=False, world_size=1)


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


@pytest.mark.parametrize("fp16_scale", [None, 1024.0])
def test_each_update_records_its_networks_unscaled_gradient_norm(fp16_scale):
    network = nn.Linear(2, 1)
    scaler = torch.amp.GradScaler("cpu", enabled=fp16_scale is not None, init_scale=fp16_scale or 1.0)
    step = Step({"net": torch.optim.SGD(network.parameters(), lr=0.1)}, scaler)
    # d/dw of (x . w + b) with x = (3, 4) is (3, 4), and 1 for the bias: norm sqrt(9 + 16 + 1)
    step("net", network(torch.tensor([[3.0, 4.0]])).sum())
    assert float(step.grad_norms["net"]) == pytest.approx(26 ** 0.5)


def test_gradient_norms_are_recorded_on_logged_steps_and_on_a_networks_first_update_after_a_read():
    network = nn.Linear(1, 1, bias=False)
    step = Step({"net": torch.optim.SGD(network.parameters(), lr=0.0)}, torch.amp.GradScaler("cpu", enabled=False))

    def update(number: int, x: float, logged: bool) -> None:
        step.begin_step(number, record_norms=logged)
        step("net", network(torch.tensor([[x]])).sum())  # the weight's gradient is x

    update(1, 1.0, logged=False)  # the first update always records: nothing to show otherwise
    update(2, 2.0, logged=False)
    assert step.read_grad_norms() == {"net": 1.0}
    update(3, 3.0, logged=False)  # the first update since that read records
    update(4, 4.0, logged=False)
    update(5, 5.0, logged=True)
    assert step.read_grad_norms() == {"net": 5.0}
    update(6, 6.0, logged=False)
    assert step.read_grad_norms() == {"net": 6.0}
