"""CycleGAN and pix2pix through the real command line, on embedded and on-disk data."""

from __future__ import annotations

import pytest
import torch
from helpers import CYCLEGAN, PIX2PIX, assert_same_training, read_events, run_cli, write_images

from gantrain.checkpoint import load_checkpoint


@pytest.mark.parametrize(
    ("args", "grids"),
    [
        ([*CYCLEGAN, "dataset=shapes_unpaired", "dataset.num_samples=64"], ["A_to_B", "B_to_A"]),
        ([*PIX2PIX, "dataset=shapes_paired", "dataset.num_samples=64"], ["translation"]),
    ],
)
def test_translation_models_train_on_the_embedded_data(args, grids, workdir):
    run_cli(*args, "trainer.max_steps=4", "hydra.run.dir=run", cwd=workdir)
    scalars, images = read_events(workdir / "run")
    assert {"loss/generator", "loss/discriminator", "lr/discriminator" if "model=pix2pix" in args
            else "lr/discriminators"} <= scalars.keys()
    assert sorted(scalars["loss/generator"]) == [1, 2, 3, 4]
    for grid in grids:
        assert images[f"samples/{grid}"] == [4]
    assert load_checkpoint(workdir / "run")["step"] == 4


def test_cyclegan_on_a_folder_in_the_official_layout(workdir):
    root = workdir / "day2night"
    for split, count in (("trainA", 5), ("trainB", 3), ("testA", 2), ("testB", 2)):
        write_images(root / split, count, (48, 40), 200 if split.endswith("A") else 30)
    run_cli(*CYCLEGAN, "dataset=unaligned", f"dataset.path={root}", "dataset.image_size=32",
            "dataset.load_size=36", "trainer.max_steps=5", "hydra.run.dir=run", cwd=workdir)
    scalars, images = read_events(workdir / "run")
    assert sorted(scalars["loss/cycle_a"]) == [1, 2, 3, 4, 5]
    assert images["samples/real_A"] == [0]


def test_pix2pix_on_aligned_pairs_in_the_official_layout(workdir):
    root = workdir / "pairs"
    for split in ("train", "val"):
        write_images(root / split, 3, (80, 40), 120)
    run_cli(*PIX2PIX, "dataset=aligned", f"dataset.path={root}", "dataset.image_size=32", "dataset.load_size=36",
            "model.direction=BtoA", "trainer.max_steps=3", "hydra.run.dir=run", cwd=workdir)
    scalars, _ = read_events(workdir / "run")
    assert sorted(scalars["loss/l1"]) == [1, 2, 3]


def test_epochs_drive_the_linear_learning_rate_decay(workdir):
    run_cli(*CYCLEGAN, "dataset=shapes_unpaired", "dataset.num_samples=8", "trainer.batch_size=4",
            "trainer.max_epochs=4", "model.n_epochs=2", "model.n_epochs_decay=2", "hydra.run.dir=run", cwd=workdir)
    scalars, _ = read_events(workdir / "run")
    rates = scalars["lr/generators"]
    assert sorted(rates) == list(range(1, 9))  # 4 epochs of 2 steps
    # logged after each step: the rate of the next epoch once an epoch ends
    assert [rates[step] for step in (1, 2, 4, 6)] == pytest.approx([2e-4, 2e-4, 2e-4 * 2 / 3, 2e-4 / 3])


def test_cyclegan_resume_is_exact_with_pools_and_schedules(workdir):
    args = [*CYCLEGAN, "dataset=shapes_unpaired", "dataset.num_samples=16", "trainer.batch_size=2",
            "model.pool_size=3", "model.n_epochs=1", "model.n_epochs_decay=2"]
    run_cli(*args, "trainer.max_steps=10", "trainer.log_every=2", "hydra.run.dir=straight", cwd=workdir)
    run_cli(*args, "trainer.max_steps=5", "trainer.log_every=2", "hydra.run.dir=resumed", cwd=workdir)
    run_cli("resume=resumed", "trainer.max_steps=10", cwd=workdir)
    # 8 steps per epoch: the stop at step 5 falls inside the first epoch
    straight, resumed = load_checkpoint(workdir / "straight"), load_checkpoint(workdir / "resumed")
    assert torch.equal(straight["recipe"]["pool_a._extra_state"]["images"],
                       resumed["recipe"]["pool_a._extra_state"]["images"])
    assert straight["schedulers"] == resumed["schedulers"]
    assert_same_training(workdir / "straight", workdir / "resumed")


def test_a_translation_model_on_single_images_is_a_clear_error(workdir):
    result = run_cli("model=cyclegan", "dataset.num_samples=64", cwd=workdir, check=False)
    assert result.returncode == 2
    assert "model=cyclegan trains on A/B image pairs" in result.stderr and "shapes_unpaired" in result.stderr
    assert "Traceback" not in result.stderr
