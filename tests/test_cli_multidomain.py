"""StarGAN and StarGAN v2 through the real command line: embedded data, on-disk layouts, resume, translate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import MULTIDOMAIN_SHAPES, STARGAN, STARGAN_V2, assert_same_training, read_events, run_cli
from PIL import Image

from gantrain.checkpoint import load_checkpoint


def test_stargan_trains_on_the_embedded_attributes(workdir):
    run_cli(*STARGAN, "dataset=shapes_attributes", *MULTIDOMAIN_SHAPES, "trainer.max_steps=4", "hydra.run.dir=run", cwd=workdir)
    scalars, images = read_events(workdir / "run")
    assert set(scalars["loss/discriminator"]) == {1, 2, 3, 4}
    assert min(scalars["loss/generator"]) == 2  # the first generator step is the n_critic=2-th
    assert {"loss/reconstruction", "loss/generator_classification", "critic/gradient_penalty"} <= scalars.keys()
    assert scalars["lr/generator"][4] == pytest.approx(1e-4)
    assert images["samples/translations"] == [4]
    grid = Image.open(workdir / "run" / "samples" / "translations_0000004.png")
    assert grid.size[0] == 2 + 7 * (32 + 2)  # input + one column per attribute, make_grid's padding of 2
    state = load_checkpoint(workdir / "run")
    labels = yaml.safe_load(state["config"])["model"]["labels"]
    assert labels["names"] == ["red", "green", "blue", "circle", "square", "triangle"]
    assert labels["groups"] == [["red", "green", "blue"], ["circle", "square", "triangle"]]


def test_stargan_v2_trains_on_the_embedded_domains_and_resumes_exactly(workdir):
    # The shapes tuning turns the diversity loss off; switch it on to see its decay survive the resume.
    args = [*STARGAN_V2, "dataset=shapes_domains", *MULTIDOMAIN_SHAPES, "model.lambda_diversity=2", "model.diversity_decay_steps=100"]
    run_cli(*args, "trainer.max_steps=4", "hydra.run.dir=straight", cwd=workdir)
    run_cli(*args, "trainer.max_steps=2", "hydra.run.dir=resumed", cwd=workdir)
    run_cli("resume=resumed", "trainer.max_steps=4", cwd=workdir)
    assert_same_training(workdir / "straight", workdir / "resumed")
    scalars, images = read_events(workdir / "straight")
    assert {"generator_latent/style", "generator_reference/cycle", "discriminator_latent/r1"} <= scalars.keys()
    assert scalars["lambda/diversity"][4] == pytest.approx(2 * (1 - 4 / 100))
    assert set(images) == {"samples/real", "samples/latent_guided", "samples/reference_guided"}


def test_stargan_on_a_celeba_folder_with_chosen_attributes(workdir, celeba_root):
    root, _ = celeba_root
    run_cli(*STARGAN, "dataset=celeba", f"dataset.path={root}", "dataset.split=all", "dataset.image_size=16",
            "dataset.attributes=[Eyeglasses,Smiling,Black_Hair,Blond_Hair]", "trainer.max_steps=2",
            "hydra.run.dir=run", cwd=workdir)
    labels = yaml.safe_load(load_checkpoint(workdir / "run")["config"])["model"]["labels"]
    assert labels == {"names": ["Eyeglasses", "Smiling", "Black_Hair", "Blond_Hair"],
                      "groups": [["Black_Hair", "Blond_Hair"]], "multi_label": True}
    assert "samples/translations" in read_events(workdir / "run")[1]


def test_stargan_v2_on_domain_folders(workdir, domains_root):
    run_cli(*STARGAN_V2, "dataset=domains", f"dataset.path={domains_root}", "dataset.image_size=16",
            "trainer.max_steps=2", "hydra.run.dir=run", cwd=workdir)
    labels = yaml.safe_load(load_checkpoint(workdir / "run")["config"])["model"]["labels"]
    assert labels["names"] == sorted(labels["names"]) and not labels["multi_label"]
    assert "samples/reference_guided" in read_events(workdir / "run")[1]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["model=stargan", "dataset=shapes"], "images labelled with attributes or domains"),
        (["model=stargan_v2", "dataset=shapes_attributes"], "dataset=shapes_domains"),
        (["model=stargan", "dataset=shapes_unpaired"], "images labelled with attributes or domains"),
    ],
)
def test_models_on_the_wrong_kind_of_data_are_clear_errors(workdir, args, expected):
    result = run_cli(*args, "device=cpu", "dataset.num_samples=64", cwd=workdir, check=False)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "Traceback" not in result.stderr


def write_inputs(folder: Path) -> None:
    folder.mkdir()
    Image.new("RGB", (37, 23), (200, 30, 30)).save(folder / "wide.png")
    Image.new("RGB", (32, 32), (30, 200, 30)).save(folder / "square.png")


def translate(workdir: Path, *args: str, check: bool = True):
    return run_cli("checkpoint=run", "input=inputs", *args, module="gantrain.translate", cwd=workdir, check=check)


def test_stargan_translates_to_named_attributes(workdir):
    run_cli(*STARGAN, "dataset=shapes_attributes", *MULTIDOMAIN_SHAPES, "trainer.max_steps=2", "hydra.run.dir=run", cwd=workdir)
    write_inputs(workdir / "inputs")
    # the comma-separated list works without Hydra's quoting
    translate(workdir, "target=blue,square", "output=out", "side_by_side=true")
    assert Image.open(workdir / "out" / "wide.png").size == (37, 23)
    assert Image.open(workdir / "out" / "square.png").size == (32, 32)
    assert Image.open(workdir / "out" / "side_by_side" / "wide.png").size == (74, 23)

    unknown = translate(workdir, "target=purple", "output=bad", check=False)
    assert unknown.returncode == 2 and "red, green, blue, circle, square, triangle" in unknown.stderr
    missing = translate(workdir, "output=bad", check=False)
    assert missing.returncode == 2 and "target=" in missing.stderr
    styles = translate(workdir, "target=red", "num_styles=3", "output=bad", check=False)
    assert styles.returncode == 2 and "StarGAN v2" in styles.stderr


def test_stargan_v2_translates_with_references_and_random_styles(workdir):
    run_cli(*STARGAN_V2, "dataset=shapes_domains", *MULTIDOMAIN_SHAPES, "trainer.max_steps=1", "hydra.run.dir=run", cwd=workdir)
    write_inputs(workdir / "inputs")
    references = workdir / "references"
    references.mkdir()
    for name in ("r1", "r2"):
        Image.new("RGB", (40, 40), (20, 20, 220)).save(references / f"{name}.png")

    translate(workdir, "target=blue_square", "reference=references", "output=guided")
    assert sorted(p.name for p in (workdir / "guided").iterdir()) == [
        "square_r1.png", "square_r2.png", "wide_r1.png", "wide_r2.png"
    ]
    translate(workdir, "target=green_circle", "num_styles=3", "output=latent", "side_by_side=true")
    assert Image.open(workdir / "latent" / "wide_style2.png").size == (37, 23)
    assert Image.open(workdir / "latent" / "side_by_side" / "wide.png").size == (4 * 37, 23)
    # the same seed gives the same styles
    translate(workdir, "target=green_circle", "num_styles=3", "output=again")
    for name in ("wide_style0.png", "square_style1.png"):
        first = np.asarray(Image.open(workdir / "latent" / name))
        assert np.array_equal(first, np.asarray(Image.open(workdir / "again" / name)))

    wrong = translate(workdir, "target=red,green", "output=bad", check=False)
    assert wrong.returncode == 2 and "choose one of red_circle" in wrong.stderr
