"""gantrain.load: the Python API gives the pixels that gantrain-sample and gantrain-translate write."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import run_entry_point
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

import gantrain
import gantrain.sample
import gantrain.translate
from gantrain.api import LabelTranslationModel, NoiseModel, StyleTranslationModel, TranslationModel
from gantrain.errors import CheckpointError, GantrainError


def write_noise_image(path: Path, size: tuple[int, int], seed: int) -> Path:
    """A random RGB image of ``size`` (width, height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = torch.randint(0, 256, (size[1], size[0], 3), generator=torch.Generator().manual_seed(seed))
    Image.fromarray(pixels.to(torch.uint8).numpy()).save(path)
    return path


def unit_tensor(path: Path) -> torch.Tensor:
    """C x H x W in [0, 1], as a caller holding the image as a tensor would pass it."""
    return pil_to_tensor(Image.open(path)).float() / 255


def assert_same_pixels(images: torch.Tensor, files: list[Path], levels: int = 0) -> None:
    """Each image in [0, 1], quantised as save_image does, is the PNG file's, within ``levels`` of 255."""
    assert len(images) == len(files)
    for image, file in zip(images, files):
        ours = image.mul(255).add(0.5).clamp(0, 255).to(torch.uint8)
        written = pil_to_tensor(Image.open(file))
        assert ours.shape == written.shape
        assert (ours.int() - written.int()).abs().max() <= levels, file.name


def test_noise_model_generates_what_gantrain_sample_writes(trained_run, tmp_path):
    run = trained_run("dcgan")
    run_entry_point(gantrain.sample.main, f"checkpoint={run}", f"output={tmp_path}", "num_samples=10", "device=cpu")
    model = gantrain.load(run)
    assert isinstance(model, NoiseModel) and model.model == "dcgan"
    images = model.generate(10, seed=0)
    assert images.shape == (10, 3, 32, 32) and images.min() >= 0 and images.max() <= 1
    assert_same_pixels(images, sorted(tmp_path.glob("0*.png")))
    assert torch.equal(model.generate(10, seed=0), images)
    assert model.generate(2).shape == (2, 3, 32, 32)


def test_translation_model_translates_paths_pil_images_and_tensors_as_gantrain_translate(
    trained_run, tmp_path
):
    run = trained_run("cyclegan")
    photos = [write_noise_image(tmp_path / "photos" / f"{name}.png", (37, 23), seed) for seed, name in enumerate("ab")]
    run_entry_point(gantrain.translate.main, f"checkpoint={run}", f"input={tmp_path / 'photos'}",
                    f"output={tmp_path / 'out'}", "direction=BtoA", "device=cpu")
    written = [tmp_path / "out" / photo.name for photo in photos]
    model = gantrain.load(run, device="cpu")
    assert isinstance(model, TranslationModel)

    translated = model.translate(photos, direction="BtoA")
    assert translated.shape == (2, 3, 23, 37) and translated.min() >= 0 and translated.max() <= 1
    assert_same_pixels(translated, written)
    assert_same_pixels(model.translate(Image.open(photos[1]), "BtoA"), written[1:])
    # a float tensor reaches [-1, 1] by another rounding than 8-bit pixels: one level apart at most
    assert_same_pixels(model.translate(torch.stack([unit_tensor(p) for p in photos]), "BtoA"), written, levels=1)
    assert_same_pixels(model.translate(unit_tensor(photos[0]), "BtoA"), written[:1], levels=1)
    assert not torch.equal(model.translate(photos), translated)  # AtoB is the other generator

    pix2pix = gantrain.load(trained_run("pix2pix"))
    assert pix2pix.translate(unit_tensor(photos[0])).shape == (1, 3, 23, 37)


def test_stargan_model_applies_named_targets_as_gantrain_translate(trained_run, tmp_path):
    run = trained_run("stargan")
    photo = write_noise_image(tmp_path / "in" / "a.png", (50, 30), 0)
    run_entry_point(gantrain.translate.main, f"checkpoint={run}", f"input={photo}", f"output={tmp_path / 'out'}",
                    "target=red,-circle", "device=cpu")
    model = gantrain.load(run)
    assert isinstance(model, LabelTranslationModel) and "circle" in model.labels
    translated = model.translate(photo, ["red", "-circle"])
    assert translated.shape == (1, 3, 30, 50)
    assert_same_pixels(translated, [tmp_path / "out" / "a.png"])
    assert torch.equal(model.translate(photo, "red,-circle"), translated)


def test_stargan_v2_model_renders_random_and_reference_styles_as_gantrain_translate(
    trained_run, tmp_path
):
    run = trained_run("stargan_v2")
    photo = write_noise_image(tmp_path / "in" / "a.png", (50, 30), 0)
    references = [write_noise_image(tmp_path / "refs" / "r1.png", (20, 20), 1),
                  write_noise_image(tmp_path / "refs" / "r2.png", (64, 48), 2)]
    model = gantrain.load(run)
    assert isinstance(model, StyleTranslationModel)
    domain = model.domains[-1]
    common = [f"checkpoint={run}", f"input={photo}", f"target={domain}", "device=cpu"]
    run_entry_point(gantrain.translate.main, *common, f"output={tmp_path / 'random'}", "num_styles=2")
    run_entry_point(gantrain.translate.main, *common, f"output={tmp_path / 'copied'}",
                    f"reference={tmp_path / 'refs'}")

    rng = torch.get_rng_state()
    random_styles = model.translate(photo, domain, num_styles=2, seed=0)
    assert torch.equal(torch.get_rng_state(), rng)  # the seed does not disturb the caller's random state
    assert random_styles.shape == (1, 2, 3, 30, 50)
    assert_same_pixels(random_styles[0], [tmp_path / "random" / f"a_style{k}.png" for k in range(2)])
    copied = model.translate(photo, domain, references=references)
    assert copied.shape == (1, 2, 3, 30, 50) and copied.min() >= 0 and copied.max() <= 1
    assert_same_pixels(copied[0], [tmp_path / "copied" / "a_r1.png", tmp_path / "copied" / "a_r2.png"])


@pytest.mark.parametrize(
    ("family", "call", "message"),
    [
        ("cyclegan", lambda model: model.translate(torch.rand(1, 3, 8, 8) * 255), "values in [0, 1]"),
        ("cyclegan", lambda model: model.translate(torch.rand(1, 1, 8, 8)), "3-channel images"),
        ("cyclegan", lambda model: model.translate([torch.rand(3, 8, 8), torch.rand(3, 12, 8)]), "different sizes"),
        ("cyclegan", lambda model: model.translate(torch.rand(3, 8, 8), "sideways"), "choose AtoB or BtoA"),
        ("cyclegan", lambda model: model.translate(42), "Cannot read a int"),
        ("cyclegan", lambda model: model.translate("nowhere.png"), "Cannot read nowhere.png"),
        ("pix2pix", lambda model: model.translate(torch.rand(3, 8, 8), "BtoA"), "trained AtoB"),
        ("stargan", lambda model: model.translate(torch.rand(3, 8, 8), []), "Name a target among red"),
        ("stargan", lambda model: model.translate(torch.rand(3, 8, 8), ["purple"]), "not trained on"),
        ("stargan_v2", lambda model: model.translate(torch.rand(3, 8, 8), "purple"), "not one of the model's domains"),
        ("dcgan", lambda model: model.generate(0), "at least 1"),
    ],
    ids=["range", "channels", "sizes", "direction", "type", "file", "pix2pix-direction", "no-target",
         "unknown-attribute", "unknown-domain", "count"],
)
def test_api_errors_say_what_to_pass(family, call, message, trained_run):
    with pytest.raises(GantrainError) as raised:
        call(gantrain.load(trained_run(family)))
    assert message in str(raised.value)


def test_load_reports_a_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="No checkpoint at"):
        gantrain.load(tmp_path / "missing")
