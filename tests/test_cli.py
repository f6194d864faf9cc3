"""The real command line: training runs, TensorBoard read back, checkpoints, sweeps and errors."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import assert_same_training, final_state, read_events, run_cli, tiny

from gantrain.checkpoint import load_checkpoint

EXPECTED_TAGS = {
    "gan": {"loss/generator", "loss/discriminator", "discriminator/D(x)", "discriminator/D(G(z))",
            "discriminator/accuracy_real", "discriminator/accuracy_fake"},
    "wgan": {"loss/generator", "loss/discriminator", "critic/wasserstein_estimate"},
    "wgan_gp": {"loss/generator", "loss/discriminator", "critic/wasserstein_estimate", "critic/gradient_penalty"},
}
EXPECTED_TAGS["dcgan"] = EXPECTED_TAGS["gan"]
COMMON_TAGS = {"perf/images_per_s", "health/grad_norm/generator", "health/grad_norm/discriminator", "lr/generator",
               "lr/discriminator", "quality/valid_share", "quality/coverage"}


@pytest.mark.parametrize("model", ["gan", "dcgan", "wgan", "wgan_gp"])
def test_every_model_trains_through_the_cli_and_logs_to_tensorboard(model, workdir):
    run_cli(*tiny(model, "trainer.max_steps=4"), cwd=workdir)
    (run_dir,) = (workdir / "outputs" / model / "shapes").iterdir()
    scalars, images = read_events(run_dir)
    assert EXPECTED_TAGS[model] | COMMON_TAGS <= scalars.keys()
    assert sorted(scalars["loss/discriminator"]) == [2, 4]
    assert all(torch.isfinite(torch.tensor(v)) for v in scalars["loss/discriminator"].values())
    assert images["samples/samples"] == [4] and images["samples/real"] == [0]
    assert (run_dir / "samples" / "samples_0000004.png").stat().st_size > 0
    log = (run_dir / "train.log").read_text()
    assert log.count("- step 4 of 4 (100%)") == 1
    assert "dataset.in_memory=auto: on. 256 shapes of 3x32x32 uint8 take 0.8 MiB" in log  # rendered once
    assert (run_dir / ".hydra" / "config.yaml").is_file()

    state = load_checkpoint(run_dir)
    assert state["step"] == 4 and state["choices"]["model"] == model
    assert f"model={model}" in (run_dir / ".hydra" / "overrides.yaml").read_text().replace("- ", "")


def test_default_run_takes_the_shapes_tuning_and_the_paper_settings_stay_reachable(workdir):
    default = run_cli("--cfg", "job", cwd=workdir).stdout
    assert "ngf: 32" in default and "ema_decay: 0.999" in default and "max_steps: 12000" in default
    assert "lr: 0.0005" in default and "precision: auto" in default
    paper = run_cli("--cfg", "job", "~tuning", cwd=workdir).stdout
    assert "ngf: 64" in paper and "ema_decay: 0.0" in paper
    assert "ngf: 64" in run_cli("--cfg", "job", "dataset=mnist", cwd=workdir).stdout  # tuned for shapes only


@pytest.mark.parametrize("model", ["dcgan", "wgan"])
def test_resume_continues_bit_for_bit(model, workdir):
    """8 steps straight == 4 steps, stop, resume, 4 more.

    WGAN: n_critic 3 straddles the stop; the straight run decays its rates after step 4, and the
    stopped one, started without a decay, is given it on resume without naming the model (the
    run's config groups are composed).  Logged every step, its critic-only step 5 repeats the
    generator's loss of step 3 in both runs.
    """
    extra = ["trainer.checkpoint_every=100", "trainer.sample_every=100"]
    decay = []
    if model == "wgan":
        extra += ["model.n_critic=3", "trainer.log_every=1"]
        decay = ["model.n_steps=4", "model.n_steps_decay=8"]
    run_cli(*tiny(model, "trainer.max_steps=8", "hydra.run.dir=straight", *extra, *decay), cwd=workdir)
    run_cli(*tiny(model, "trainer.max_steps=4", "hydra.run.dir=resumed", *extra), cwd=workdir)
    run_cli("resume=resumed", "trainer.max_steps=8", *decay, cwd=workdir)
    assert_same_training(workdir / "straight", workdir / "resumed")
    if model == "wgan":  # after step 8: 1 - (8 + 1 - 4) / (8 + 1) of the initial rate
        (rates,) = final_state(workdir / "resumed")["optimizers"]["generator"]["param_groups"]
        assert rates["lr"] == pytest.approx(rates["initial_lr"] * 4 / 9)
    records = sorted(p.name for p in (workdir / "resumed" / ".hydra").iterdir())
    assert "config.yaml" in records and any(name.startswith("resumed_") for name in records)


def test_sigterm_writes_a_checkpoint_and_resume_finishes_the_same_run(workdir):
    args = tiny("dcgan", "trainer.checkpoint_every=1000", "trainer.sample_every=1000")
    run_cli(*args, "trainer.max_steps=60", "hydra.run.dir=straight", cwd=workdir)
    process = subprocess.Popen(
        [sys.executable, "-m", "gantrain", *args, "trainer.max_steps=60", "hydra.run.dir=stopped"],
        cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    log = workdir / "stopped" / "train.log"
    deadline = time.monotonic() + 120
    while "step 2 of " not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, output
    stopped_at = final_state(workdir / "stopped")["step"]
    assert 2 <= stopped_at < 60
    assert "resume=" in log.read_text()
    run_cli("resume=stopped", cwd=workdir)
    assert_same_training(workdir / "straight", workdir / "stopped")


def test_same_seed_same_run_other_seed_other_run(workdir):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        run_cli(*tiny("gan", "trainer.max_steps=2", f"seed={seed}", f"hydra.run.dir={name}"), cwd=workdir)
    weights = {name: final_state(workdir / name)["recipe"]["generator.net.0.weight"] for name in "abc"}
    assert torch.equal(weights["a"], weights["b"])
    assert not torch.equal(weights["a"], weights["c"])


def test_resume_refuses_another_model(workdir):
    run_cli(*tiny("dcgan", "trainer.max_steps=2", "hydra.run.dir=run"), cwd=workdir)
    result = run_cli("resume=run", "model=wgan", cwd=workdir, check=False)
    assert result.returncode == 2
    assert "model=wgan (the run used model=dcgan)" in result.stderr
    assert "Traceback" not in result.stderr


def test_multirun_produces_one_complete_run_per_job(workdir):
    run_cli("-m", "model=dcgan,wgan_gp", *tiny("dcgan", "trainer.max_steps=2")[1:], cwd=workdir)
    (sweep,) = (workdir / "outputs" / "multirun").iterdir()
    runs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(runs) == 2
    for run in runs:
        scalars, images = read_events(run)
        assert "loss/discriminator" in scalars and "samples/samples" in images
        assert load_checkpoint(run)["step"] == 2
    assert [load_checkpoint(run)["choices"]["model"] for run in runs] == ["dcgan", "wgan_gp"]
    assert "model=wgan_gp" in runs[1].name


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("modle=dcgan", "Key 'modle' not in 'TrainConfig'"),
        ("trainer.max_stpes=5", "Key 'max_stpes' not in 'TrainerConfig'"),
        ("trainer.max_steps=abc", "could not be converted to Integer"),
        ("device.precision=fp8", "expected one of [auto, fp32, bf16, fp16]"),
        ("model=dcgann", "Could not find 'model/dcgann'"),
    ],
)
def test_config_typos_stop_at_start_up(override, message, workdir):
    result = run_cli(override, cwd=workdir, check=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (workdir / "outputs").exists()


def test_missing_dataset_path_is_one_clear_paragraph(workdir):
    result = run_cli("dataset=folder", f"dataset.path={workdir / 'nowhere'}", cwd=workdir, check=False)
    assert result.returncode == 2
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("gantrain: error:") and "nowhere" in message and "dataset.path=" in message
    assert "Traceback" not in result.stderr


def test_unsupported_image_size_is_a_clear_error_before_the_data_is_kept_in_memory(workdir):
    result = run_cli("dataset.image_size=48", cwd=workdir, check=False)
    assert result.returncode == 2 and "dataset.image_size" in result.stderr and "Traceback" not in result.stderr
    log = next(workdir.glob("outputs/dcgan/shapes/*/train.log")).read_text()
    assert "DCGAN networks support image sizes 32, 64, 128, not 48" in log and "Keeping 60000 shapes" not in log


def test_sample_command_writes_images_from_the_checkpoint_alone(workdir):
    run_cli(*tiny("dcgan", "trainer.max_steps=2", "hydra.run.dir=run"), cwd=workdir)
    result = run_cli("checkpoint=run", "output=generated", "num_samples=10", "device=cpu", module="gantrain.sample", cwd=workdir)
    pngs = sorted((workdir / "generated").glob("0*.png"))
    assert len(pngs) == 10 and (workdir / "generated" / "grid.png").is_file()
    judged = (workdir / "generated" / "judge.json").read_text()
    assert '"valid_share"' in judged and "Shapes judge" in result.stdout + result.stderr
    again = run_cli("checkpoint=run/checkpoints/last.pt", "output=again", "num_samples=10",
                    module="gantrain.sample", cwd=workdir)
    assert again.returncode == 0
    assert (workdir / "again" / "00003.png").read_bytes() == pngs[3].read_bytes()


def test_sample_command_reports_a_missing_checkpoint(workdir):
    result = run_cli("checkpoint=missing", module="gantrain.sample", cwd=workdir, check=False)
    assert result.returncode == 2 and "No checkpoint at missing" in result.stderr
