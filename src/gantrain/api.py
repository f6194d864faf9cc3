"""``gantrain.load``: a trained checkpoint as a Python object, for programs that embed gantrain.

    import gantrain
    model = gantrain.load("outputs/cyclegan/horse2zebra/<run>")     # a run directory or a .pt file
    zebras = model.translate(["horse1.jpg", "horse2.jpg"])          # N x C x H x W in [0, 1]

Images go in as paths, PIL images or float tensors in [0, 1] (C x H x W or N x C x H x W)
and come out as float tensors in [0, 1] on the model's device.  They are read, padded or
resized and normalised through the functions gantrain-translate uses, and noise is drawn as
gantrain-sample draws it, so the API and the commands give the same pixels.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

from gantrain.config import DeviceType, Direction
from gantrain.device import resolve_device
from gantrain.errors import ConfigError
from gantrain.recipes.base import ImageToImage, MultiDomain, NoiseToImage
from gantrain.sample import generate
from gantrain.trained import Trained, load_trained
from gantrain.translate import (
    fit_and_translate,
    fit_and_translate_named,
    fit_references,
    image_to_tensor,
    load_image,
    target_names,
)

ImageLike = str | os.PathLike | Image.Image | torch.Tensor
Images = ImageLike | Sequence[ImageLike]


def pick_device(device: str | torch.device) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` and ``mps`` as the commands' ``device=`` reads them; anything else as torch does."""
    if isinstance(device, str) and device in DeviceType.__members__:
        return resolve_device(DeviceType(device))
    return torch.device(device)


def from_unit_range(images: torch.Tensor, channels: int) -> torch.Tensor:
    """N x C x H x W in [-1, 1] from a float tensor in [0, 1], C x H x W or N x C x H x W."""
    batch = images[None] if images.dim() == 3 else images
    if batch.dim() != 4 or batch.shape[1] != channels or not batch.is_floating_point():
        raise ConfigError(
            f"Expected a float tensor of {channels}-channel images, C x H x W or N x C x H x W, "
            f"got a {images.dtype} tensor of shape {list(images.shape)}."
        )
    low, high = batch.min().item(), batch.max().item()
    if low < 0 or high > 1:
        raise ConfigError(
            f"Image tensors hold values in [0, 1], this one from {low:g} to {high:g}: "
            f"divide 8-bit pixel values by 255, map [-1, 1] images with (x + 1) / 2."
        )
    return batch.float() * 2 - 1


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """The generators' [-1, 1] (StarGAN v2's unbounded) output as [0, 1], as gantrain's PNG files hold it."""
    return (images.float().clamp(-1, 1) + 1) / 2


def image_list(images: Images, channels: int) -> list[torch.Tensor]:
    """Each image as C x H x W in [-1, 1]: files and PIL images read exactly as gantrain-translate reads them."""
    items = list(images) if isinstance(images, (list, tuple)) else [images]
    result = []
    for item in items:
        if isinstance(item, torch.Tensor):
            result.extend(from_unit_range(item, channels))
        elif isinstance(item, Image.Image):
            result.append(image_to_tensor(item, channels))
        elif isinstance(item, (str, os.PathLike)):
            result.append(load_image(Path(item), channels))
        else:
            raise ConfigError(
                f"Cannot read a {type(item).__name__} as an image: pass a path, a PIL image or a float tensor in [0, 1]."
            )
    if not result:
        raise ConfigError("No images were given.")
    return result


class LoadedModel:
    """What every kind of model shares: the trained recipe, its training config and the image conversions."""

    def __init__(self, trained: Trained, device: torch.device):
        self.recipe = trained.recipe
        self.config = trained.config  # the training config stored in the checkpoint
        self.model = trained.model  # the family: "dcgan", "cyclegan", "stargan", ...
        self.step = trained.step
        self.device = device
        self.channels = trained.config.dataset.channels

    def as_batch(self, images: Images) -> torch.Tensor:
        """N x C x H x W in [-1, 1] on the model's device; one call translates images of one size."""
        items = image_list(images, self.channels)
        sizes = sorted({tuple(item.shape[-2:]) for item in items})
        if len(sizes) > 1:
            raise ConfigError(
                f"These images have different sizes ({', '.join(f'{h}x{w}' for h, w in sizes)}): translate "
                f"each size in its own call (the output has each input's size)."
            )
        return torch.stack(items).to(self.device)


class NoiseModel(LoadedModel):
    """GAN, DCGAN, WGAN, WGAN-GP: images from noise (the averaged generator where the run kept one)."""

    @torch.no_grad()
    def generate(self, count: int, seed: int | None = None) -> torch.Tensor:
        """``count`` x C x H x W in [0, 1]; a ``seed`` gives gantrain-sample's images for that seed."""
        return to_unit_range(generate(self.recipe, count, seed))


class TranslationModel(LoadedModel):
    """CycleGAN and pix2pix: images of any size translated A -> B or B -> A."""

    @torch.no_grad()
    def translate(self, images: Images, direction: str = "AtoB") -> torch.Tensor:
        """N x C x H x W in [0, 1], each the size of its input (pix2pix translates only as it was trained)."""
        try:
            direction = Direction(direction).value
        except ValueError:
            raise ConfigError(f"direction={direction!r}: choose AtoB or BtoA.") from None
        return to_unit_range(fit_and_translate(self.recipe, self.as_batch(images), direction))


class StarGANModel(LoadedModel):
    """StarGAN: images changed to named attributes or a named domain."""

    @property
    def labels(self) -> list[str]:
        """The attribute or domain names that ``target`` chooses among."""
        return self.recipe.labels.names

    @torch.no_grad()
    def translate(self, images: Images, target: str | Sequence[str]) -> torch.Tensor:
        """N x C x H x W in [0, 1]: ``target`` names attributes to switch on (``-Name`` off; a list or
        ``"Blond_Hair,Young"``), the others keep what the classifier reads in each image."""
        names = target_names(target) if isinstance(target, str) else list(target)
        if not names:
            raise ConfigError(f"Name a target among {', '.join(self.labels)}.")
        return to_unit_range(fit_and_translate_named(self.recipe, self.as_batch(images), names, None, 1)[:, 0])


class StarGANv2Model(LoadedModel):
    """StarGAN v2: images rendered in a domain, in the style of reference images or of random codes."""

    @property
    def domains(self) -> list[str]:
        return self.recipe.labels.names

    @torch.no_grad()
    def translate(
        self,
        images: Images,
        target: str,
        references: Images | None = None,
        num_styles: int = 1,
        seed: int | None = None,
    ) -> torch.Tensor:
        """N x K x C x H x W in [0, 1]: each input in the style of each of the K ``references`` (any
        sizes), or of ``num_styles`` random codes, the same for every input.  A ``seed`` draws the codes
        gantrain-translate draws with that seed, and leaves the global random state as it was."""
        if num_styles < 1:
            raise ConfigError(f"num_styles={num_styles} must be at least 1.")
        batch = self.as_batch(images)
        styles = None
        if references is not None:
            styles = fit_references(image_list(references, self.channels), self.recipe.image_size).to(self.device)
        with torch.random.fork_rng(enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            translated = fit_and_translate_named(self.recipe, batch, [target], styles, num_styles)
        return to_unit_range(translated)


def load(
    checkpoint: str | os.PathLike, device: str | torch.device = "cpu"
) -> NoiseModel | TranslationModel | StarGANModel | StarGANv2Model:
    """The model in a checkpoint file or run directory, in evaluation mode on ``device``.

    The kind returned depends on the family: :class:`NoiseModel` (``generate``),
    :class:`TranslationModel`, :class:`StarGANModel` or :class:`StarGANv2Model` (``translate``).
    """
    device = pick_device(device)
    trained = load_trained(checkpoint, device)
    recipe = trained.recipe
    if isinstance(recipe, NoiseToImage):
        return NoiseModel(trained, device)
    if isinstance(recipe, ImageToImage):
        return TranslationModel(trained, device)
    if isinstance(recipe, MultiDomain):
        return StarGANv2Model(trained, device) if recipe.uses_references else StarGANModel(trained, device)
    raise ConfigError(f"gantrain.load does not know the {trained.model} model's kind.")
