"""gantrain-translate: any image size in, the same size out, from the checkpoint alone."""

from __future__ import annotations

import pytest
import torch
from helpers import CYCLEGAN, PIX2PIX, run_cli
from PIL import Image

from gantrain.inference import fit_and_translate
from gantrain.recipes.base import ImageToImage


class Identity(ImageToImage):
    """Returns its input, after checking the sides are multiples as a real generator needs."""

    def __init__(self, multiple: int):
        super().__init__((3, multiple, multiple))
        self.multiple = multiple

    @property
    def size_multiple(self) -> int:
        return self.multiple

    def translate(self, images, direction):
        assert images.shape[-2] % self.multiple == 0 and images.shape[-1] % self.multiple == 0
        return images


@pytest.mark.parametrize("size", [(37, 23), (64, 64), (5, 130)])
def test_padding_path_gives_back_the_exact_image(size):
    images = torch.rand(2, 3, *size) * 2 - 1
    assert torch.equal(fit_and_translate(Identity(4), images, "AtoB"), images)


@pytest.mark.parametrize("size", [(37, 23), (300, 200)])
def test_resizing_path_gives_back_the_original_size(size):
    images = torch.full((1, 3, *size), 0.25)
    out = fit_and_translate(Identity(32), images, "AtoB")
    assert out.shape == images.shape and torch.allclose(out, images, atol=1e-4)


def write(path, size, mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, 128).save(path)


def test_cyclegan_translates_a_folder_of_odd_sizes_both_ways(workdir):
    run_cli(*CYCLEGAN, "dataset=shapes_unpaired", "dataset.num_samples=16", "trainer.max_steps=2",
            "hydra.run.dir=run", cwd=workdir)
    write(workdir / "photos" / "a.png", (37, 23))
    write(workdir / "photos" / "nested" / "b.jpg", (64, 48), mode="L")
    (workdir / "photos" / "notes.txt").write_text("not an image")
    for direction in ("AtoB", "BtoA"):
        run_cli("checkpoint=run", "input=photos", f"output={direction}", f"direction={direction}",
                "side_by_side=true", "batch_size=1", module="gantrain.translate", cwd=workdir)
        assert Image.open(workdir / direction / "a.png").size == (37, 23)
        assert Image.open(workdir / direction / "nested" / "b.png").size == (64, 48)
        assert Image.open(workdir / direction / "side_by_side" / "a.png").size == (74, 23)


def test_pix2pix_translates_one_image_and_refuses_the_other_direction(workdir):
    run_cli(*PIX2PIX, "dataset=shapes_paired", "dataset.num_samples=16", "trainer.max_steps=2",
            "hydra.run.dir=run", cwd=workdir)
    write(workdir / "edge.png", (50, 30))
    run_cli("checkpoint=run/checkpoints/last.pt", "input=edge.png", "output=out", module="gantrain.translate",
            cwd=workdir)
    assert Image.open(workdir / "out" / "edge.png").size == (50, 30)
    refused = run_cli("checkpoint=run", "input=edge.png", "direction=BtoA", module="gantrain.translate",
                      cwd=workdir, check=False)
    assert refused.returncode == 2 and "trained AtoB" in refused.stderr and "Traceback" not in refused.stderr


def test_translate_explains_missing_input(workdir):
    run_cli(*PIX2PIX, "dataset=shapes_paired", "dataset.num_samples=16", "trainer.max_steps=1",
            "hydra.run.dir=run", cwd=workdir)
    result = run_cli("checkpoint=run", "input=nowhere", module="gantrain.translate", cwd=workdir, check=False)
    assert result.returncode == 2 and "No images at input=nowhere" in result.stderr
