"""SNGAN, end to end: spectrally normalised networks, the hinge game and its schedule, and everything the
command line does with a family (train, sample, judge, evaluate, export, resume)."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import pytest
import torch
from helpers import assert_same_training, build_model, read_events, run_cli, tiny
from torch import nn
from torch.nn.utils import parametrize

from gantrain.losses import adversarial_loss
from gantrain.options import AdversarialLoss
from gantrain.step import Step
from gantrain.trained import load_trained

SHAPE = (3, 32, 32)
TINY = tiny("sngan")


def tiny_sngan(**overrides):
    return build_model("sngan", SHAPE, torch.optim.Adam, ngf=4, ndf=4, nz=8, **overrides)


def largest_singular_value(weight: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(weight.detach().flatten(1), ord=2))


def test_every_discriminator_layer_is_spectrally_normalised_and_the_generator_is_dcgans():
    recipe = build_model("sngan", (3, 64, 64), torch.optim.Adam)
    convolutions = [m for m in recipe.discriminator.modules() if isinstance(m, nn.Conv2d)]
    assert len(convolutions) == 5 and all(parametrize.is_parametrized(m, "weight") for m in convolutions)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in recipe.discriminator.modules())
    dcgan = build_model("dcgan", (3, 64, 64), torch.optim.Adam, nz=128)
    assert recipe.nz == 128  # the paper's z
    assert sum(p.numel() for p in recipe.generator.parameters()) == sum(p.numel() for p in dcgan.generator.parameters())
    # after a few power iterations every normalised weight has a largest singular value of 1
    recipe.discriminator(torch.zeros(2, 3, 64, 64))
    for _ in range(30):
        recipe.discriminator(torch.rand(2, 3, 64, 64))
    recipe.discriminator.eval()
    assert all(largest_singular_value(m.weight) == pytest.approx(1.0, abs=0.02) for m in convolutions)


def test_the_hinge_game_on_known_scores():
    scores = torch.tensor([2.0, 0.5, -1.0])
    assert adversarial_loss(scores, True, AdversarialLoss.hinge).item() == pytest.approx((0 + 0.5 + 2) / 3)
    assert adversarial_loss(scores, False, AdversarialLoss.hinge).item() == pytest.approx((3 + 1.5 + 0) / 3)
    assert adversarial_loss(scores, True, AdversarialLoss.hinge, generator=True).item() == pytest.approx(-0.5)


def test_the_generator_steps_after_every_n_critic_discriminator_steps_and_resumes_the_count():
    torch.manual_seed(0)
    recipe = tiny_sngan(n_critic=3)
    step = Step(recipe.optimizers(), torch.amp.GradScaler("cpu", enabled=False))
    batch = [torch.rand(4, *SHAPE) * 2 - 1]
    generated = ["loss/generator" in recipe.train_step(batch, step) for _ in range(6)]
    assert generated == [False, False, True, False, False, True]
    recipe.train_step(batch, step)
    restored = tiny_sngan(n_critic=3)
    restored.load_state_dict(recipe.state_dict())
    assert restored.critic_steps_since_generator == 1
    assert all(p.grad is None for p in recipe.discriminator.parameters())


def test_sngan_trains_samples_judges_evaluates_exports_and_resumes_through_the_cli(workdir, tmp_path):
    run_cli(*TINY, "trainer.max_steps=8", "hydra.run.dir=straight", cwd=workdir)
    scalars, images = read_events(workdir / "straight")
    assert {"loss/generator", "loss/discriminator", "critic/f(x)", "quality/valid_share",
            "quality/sample_diversity"} <= scalars.keys()
    assert sorted(scalars["loss/generator"]) == [2, 4, 6, 8] and images["samples/samples"] == [4, 8]

    # resume: 4 steps, stop, 4 more equals 8 straight (n_critic 2 straddles nothing; the counter is state)
    run_cli(*TINY, "trainer.max_steps=3", "hydra.run.dir=resumed", cwd=workdir)
    run_cli("resume=resumed", "trainer.max_steps=8", cwd=workdir)
    assert_same_training(workdir / "straight", workdir / "resumed")

    sampled = run_cli("checkpoint=straight", "output=generated", "num_samples=8", module="gantrain.sample",
                      cwd=workdir)
    assert len(list((workdir / "generated").glob("0*.png"))) == 8 and "Shapes judge" in sampled.stdout + sampled.stderr
    assert "valid_share" in json.loads((workdir / "generated" / "judge.json").read_text())

    run_cli("checkpoint=straight", "output=report.json", "metrics.task_images=16", module="gantrain.evaluate",
            cwd=workdir)
    report = json.loads((workdir / "report.json").read_text())
    assert report["model"] == "sngan" and 0.0 <= report["metrics"]["valid_share"] <= 1.0

    run_cli("checkpoint=straight", "output=generator.onnx", module="gantrain.export", cwd=workdir)
    recipe = load_trained(workdir / "straight", torch.device("cpu")).recipe
    noise = torch.randn(3, recipe.nz)
    with torch.no_grad():
        expected = recipe.generator(noise).numpy()
    session = onnxruntime.InferenceSession(str(workdir / "generator.onnx"))
    (exported,) = session.run(None, {"noise": noise.numpy()})
    assert np.abs(exported - expected).max() < 1e-4
