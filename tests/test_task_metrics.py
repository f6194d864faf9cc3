"""Task metrics on known inputs: perfect and hopeless stand-ins, fixed noise levels, fresh networks."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
import torchvision
from helpers import build_model
from torch import nn
from torch.utils.data import TensorDataset

from gantrain.data.shapes import ShapesDataset
from gantrain.data.shapes_attributes import ShapesAttributes
from gantrain.data.shapes_translation import PSNR_CAP_DB, ShapesPaired, ShapesUnpaired, judge_paired
from gantrain.recipes.base import NoiseToImage
from gantrain.recipes.stargan import StarGAN
from gantrain.task_metrics import image_fidelity, task_metrics

ADAM = partial(torch.optim.Adam, lr=1e-4)
COUNT = 24


def attribute_data(labels: str = "attributes", image_size: int = 16, num_samples: int = COUNT) -> ShapesAttributes:
    return ShapesAttributes(image_size=image_size, split="test", num_samples=num_samples, labels=labels)


def tiny_stargan(dataset: ShapesAttributes) -> StarGAN:
    labels = {"names": dataset.label_names, "groups": dataset.label_groups, "multi_label": dataset.multi_label}
    return build_model("stargan", (3, 16, 16), ADAM, labels=labels, ngf=8, ndf=8, n_blocks=1, n_layers_d=3)


class Replay(nn.Module):
    """A 'generator' that returns the given real images whatever the noise."""

    def __init__(self, images: torch.Tensor):
        super().__init__()
        self.register_buffer("images", images)
        self.unused = nn.Linear(1, 1)  # a parameter, so the recipe has a device

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.images[: len(noise)]


class LabelStamp(nn.Module):
    """A StarGAN 'generator' that writes the target label into the image's first row."""

    def forward(self, images: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        stamped = images.clone()
        stamped[:, 0, 0, : condition.size(1)] = condition
        return stamped


class LabelReader(nn.Module):
    """A StarGAN 'discriminator' whose classifier reads the stamped label back, or its opposite."""

    def __init__(self, size: int, sign: float = 1.0):
        super().__init__()
        self.size, self.sign = size, sign
        self.unused = nn.Linear(1, 1)  # a parameter, so the recipe has a device

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.sign * (images[:, 0, 0, : self.size] - 0.5)
        return images.mean((1, 2, 3)), logits


def test_fidelity_of_identical_images_and_of_a_known_error():
    targets = torch.rand(4, 3, 16, 16) - 0.5  # in [-0.5, 0.5]: an error of 0.2 stays in range
    same = image_fidelity(targets, targets)
    assert same["l1"].tolist() == [0.0] * 4
    assert same["psnr"].tolist() == [PSNR_CAP_DB] * 4
    assert same["ssim"] == pytest.approx(torch.ones(4))
    signs = torch.randint(0, 2, targets.shape) * 2 - 1
    off = image_fidelity(targets + 0.2 * signs, targets)
    assert off["l1"] == pytest.approx(torch.full((4,), 0.2))
    # 0.2 in [-1, 1] units is 0.1 in [0, 1]: PSNR = -10 log10(0.1 ** 2) = 20 dB
    assert off["psnr"] == pytest.approx(torch.full((4,), 20.0), abs=1e-3)
    assert (off["ssim"] < 0.9).all()


def test_pix2pix_fidelity_on_shapes_paired_is_judge_paireds():
    dataset = ShapesPaired(split="test", num_samples=COUNT)
    recipe = build_model("pix2pix", (3, 32, 32), ADAM, ngf=8, ndf=8, generator="unet_32")
    recipe.generator = nn.Identity()  # outputs the outline: a known, imperfect translation
    scores = task_metrics(recipe, dataset, count=COUNT)
    items = [dataset[i] for i in range(COUNT)]
    expected = judge_paired(torch.stack([i["A"] for i in items]), torch.stack([i["B"] for i in items]))
    assert scores["l1"] == pytest.approx(expected["l1"], rel=1e-5)
    assert scores["psnr"] == pytest.approx(expected["psnr"], rel=1e-4)
    assert 0 < scores["ssim"] < 1


def test_the_shapes_judge_passes_real_images_and_fails_fresh_generators():
    real = torch.stack([ShapesDataset(num_samples=COUNT)[i][0] for i in range(COUNT)])
    replay = NoiseToImage(real.shape[1:], ADAM, Replay(real), nn.Linear(1, 1), nz=4, ema_decay=0.0)
    scores = task_metrics(replay, ShapesDataset(), count=COUNT)
    assert scores["valid_share"] >= 0.95 and scores["coverage"] == 1.0
    torch.manual_seed(0)
    fresh = task_metrics(build_model("dcgan", (3, 32, 32), ADAM, ngf=8, ndf=8), ShapesDataset(), count=COUNT)
    assert fresh["valid_share"] == 0.0 and fresh["coverage"] == 0.0


def test_cyclegan_judge_of_an_identity_and_of_a_fresh_generator():
    dataset = ShapesUnpaired(split="test", num_samples=COUNT)
    torch.manual_seed(0)
    recipe = build_model("cyclegan", (3, 32, 32), ADAM, ngf=8, ndf=8, n_blocks=1)
    assert task_metrics(recipe, dataset, count=COUNT)["all_kept"] == 0.0
    recipe.generator_ab = nn.Identity()  # keeps colour and position, but draws circles, not squares
    scores = task_metrics(recipe, dataset, count=COUNT)
    assert scores == {"shape_correct": 0.0, "colour_kept": 1.0, "position_kept": 1.0, "all_kept": 0.0}


@pytest.mark.parametrize("labels", ["attributes", "domains"])
def test_stargan_classifier_accuracy_of_a_classifier_that_reads_the_target(labels):
    dataset = attribute_data(labels)
    recipe = tiny_stargan(dataset)
    recipe.generator = LabelStamp()
    recipe.discriminator = LabelReader(recipe.labels.size)
    assert task_metrics(recipe, dataset, count=COUNT)["classifier_accuracy"] == 1.0
    recipe.discriminator = LabelReader(recipe.labels.size, sign=-1.0)
    assert task_metrics(recipe, dataset, count=COUNT)["classifier_accuracy"] == 0.0


def test_fresh_stargan_is_judged_on_the_targets_that_change_an_attribute():
    torch.manual_seed(0)
    scores = task_metrics(tiny_stargan(attribute_data()), attribute_data(), count=COUNT)
    assert set(scores) == {
        "classifier_accuracy", "shape_correct", "colour_correct", "position_kept", "size_kept", "all_kept"
    }
    assert scores["all_kept"] == 0.0 and 0.0 <= scores["classifier_accuracy"] <= 1.0


def test_metrics_are_deterministic_leave_the_global_rng_alone_and_restore_the_mode():
    torch.manual_seed(0)
    recipe = build_model("pix2pix", (3, 32, 32), ADAM, ngf=8, ndf=8, generator="unet_32")
    recipe.generator = nn.Dropout(0.5)  # pix2pix keeps dropout on when scoring: random outputs
    dataset = ShapesPaired(split="test", num_samples=8)
    rng = torch.get_rng_state()
    first = task_metrics(recipe, dataset, count=8, seed=3)
    assert torch.equal(torch.get_rng_state(), rng) and recipe.training
    assert task_metrics(recipe.eval(), dataset, count=8, seed=3) == first and not recipe.training
    assert task_metrics(recipe, dataset, count=8, seed=4) != first


def test_stargan_v2_judges_latent_and_reference_styles_and_lpips_reads_only_a_local_file(tmp_path, monkeypatch):
    dataset = attribute_data("domains", image_size=32, num_samples=200)  # references of all nine domains
    labels = {"names": dataset.label_names, "groups": [], "multi_label": False}
    torch.manual_seed(0)
    recipe = build_model(
        "stargan_v2", (3, 32, 32), ADAM, labels=labels, latent_dim=4, style_dim=8, mapping_width=16, base_width=8,
        max_width=16,
    )
    weights = tmp_path / "alexnet.pth"  # the right layout; random values serve for a distance
    torch.save(torchvision.models.alexnet().state_dict(), weights)

    def no_download(*args, **kwargs):
        raise AssertionError("LPIPS tried to download weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    scores = task_metrics(recipe, dataset, count=8, lpips_weights=str(weights))
    judged = {"shape_correct", "colour_correct", "position_kept", "size_kept", "all_kept"}
    assert set(scores) == {f"{guide}_{name}" for guide in ("latent", "reference") for name in judged} | {
        "lpips_diversity"
    }
    assert scores["latent_all_kept"] == scores["reference_all_kept"] == 0.0
    assert math.isfinite(scores["lpips_diversity"]) and scores["lpips_diversity"] >= 0.0
    assert task_metrics(recipe, dataset, count=8) == {k: v for k, v in scores.items() if k != "lpips_diversity"}


def test_combinations_without_a_metric_score_nothing():
    recipe = build_model("dcgan", (3, 32, 32), ADAM, ngf=8, ndf=8)
    assert task_metrics(recipe, TensorDataset(torch.zeros(4, 3, 32, 32), torch.zeros(4))) == {}
    cyclegan = build_model("cyclegan", (3, 32, 32), ADAM, ngf=8, ndf=8, n_blocks=1)
    assert task_metrics(cyclegan, ShapesPaired(split="test", num_samples=4)) == {}
