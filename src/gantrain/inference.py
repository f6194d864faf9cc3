"""A trained model outside training: what ``gantrain-sample``, ``gantrain-translate``, ``gantrain-export``
and ``gantrain.load`` do with it, by what the model does rather than by its family.

A recipe names the kind of model it makes (``Recipe.inference_model``): one that draws
images from noise (:class:`NoiseModel`), one that translates in a direction
(:class:`TranslationModel`), one that translates to named labels
(:class:`LabelTranslationModel`), or to named domains in a style
(:class:`StyleTranslationModel`).  Each kind checks the requests it can serve and
refuses the others with a message that says which command or argument to use.

Images of any size work: for a generator that needs sides in multiples of 4 the image is
reflection-padded and the output cropped back; for one that needs larger multiples (a
U-Net) or a fixed size (a classifier or style encoder) it is resized there and back.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from gantrain.data.image_files import read_image, tensor_from_image
from gantrain.errors import ConfigError
from gantrain.options import Direction

if TYPE_CHECKING:
    from gantrain.recipes.base import ImageToImage
    from gantrain.trained import Trained

ImageLike = str | os.PathLike | Image.Image | torch.Tensor
Images = ImageLike | Sequence[ImageLike]

PAD_UP_TO = 4  # multiples up to this are reached by padding, larger ones by resizing
CHUNK = 256  # images generated at once: bounds the memory whatever the count
EXAMPLE_BATCH = 2  # torch.export treats sizes 0 and 1 as constants: trace with 2 to keep the batch dynamic
BATCH = {0: "batch"}  # dynamic axes by name, as they appear in an exported file
IMAGE_AXES = {0: "batch", 2: "height", 3: "width"}


@dataclass
class Exportable:
    """A network with named example inputs, and which axes of its inputs and output may change size."""

    network: nn.Module
    inputs: dict[str, torch.Tensor]
    output: str
    dynamic_axes: dict[str, dict[int, str]]  # input or output name -> axis -> name of the dimension
    output_range: str = "[-1, 1]"
    size_multiple: int = 1  # dynamic image sides must be multiples of this
    # TorchScript compiles the code so that shapes stay dynamic; a network it cannot compile is
    # traced instead, which is exact when no Python control flow depends on the input.
    scriptable: bool = True
    # torch.export traces through TorchDynamo (slower) when the code takes len() of a batch, which the
    # default tracer would fix to the example's size (per-domain heads pick rows so)
    strict: bool = False
    labels: list[str] = field(default_factory=list)  # what the condition vector's or domain's indices mean
    direction: str | None = None  # of a translation model


def example_images(image_shape: Sequence[int], device: torch.device) -> torch.Tensor:
    """A batch of images of ``image_shape``, in [-1, 1] as the generators take them, for tracing."""
    return torch.rand(EXAMPLE_BATCH, *image_shape, device=device) * 2 - 1


@dataclass(frozen=True)
class TranslationRequest:
    """What ``gantrain-translate`` was asked: each kind of model reads the fields that apply to it."""

    direction: str = Direction.AtoB.value
    target: tuple[str, ...] = ()  # label or domain names ("-Name" switches an attribute off)
    references: torch.Tensor | None = None  # style references at the model's size
    num_styles: int = 1
    # the arguments the user set, by name: a kind that cannot use one says so
    given: frozenset[str] = frozenset()


def target_names(target: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"Blond_Hair, -Male"`` or a list of names as a tuple of names."""
    names = target.split(",") if isinstance(target, str) else list(target or ())
    return tuple(name.strip() for name in names if name.strip())


def resize(images: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(images, size=list(size), mode="bicubic", antialias=True, align_corners=False).clamp(
        -1, 1
    )


def fit_references(references: Sequence[torch.Tensor], image_size: int) -> torch.Tensor:
    """Style references, each C x H x W of any size, as one batch at the model's size."""
    return torch.stack([resize(image[None], (image_size, image_size))[0] for image in references])


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
    """Generator output in [-1, 1] (or unbounded) as [0, 1], as gantrain's PNG files hold it."""
    return (images.float().clamp(-1, 1) + 1) / 2


def image_list(images: Images, channels: int) -> list[torch.Tensor]:
    """Each image as C x H x W in [-1, 1]: files and PIL images read exactly as gantrain-translate reads them."""
    items = list(images) if isinstance(images, (list, tuple)) else [images]
    result = []
    for item in items:
        if isinstance(item, torch.Tensor):
            result.extend(from_unit_range(item, channels))
        elif isinstance(item, Image.Image):
            result.append(tensor_from_image(item, channels))
        elif isinstance(item, (str, os.PathLike)):
            result.append(read_image(Path(item), channels))
        else:
            raise ConfigError(
                f"Cannot read a {type(item).__name__} as an image: pass a path, a PIL image or a float tensor in [0, 1]."
            )
    if not result:
        raise ConfigError("No images were given.")
    return result


def fit_and_translate(recipe: ImageToImage, images: torch.Tensor, direction: str) -> torch.Tensor:
    """A batch of equal-size images of any size translated in ``direction``; the output has the input's size."""
    height, width = images.shape[-2:]
    multiple = recipe.size_multiple
    if multiple <= PAD_UP_TO:
        pad_h, pad_w = -height % multiple, -width % multiple
        mode = "reflect" if min(height, width) > multiple else "replicate"
        padded = F.pad(images, (0, pad_w, 0, pad_h), mode=mode)
        return recipe.translate(padded, direction)[..., :height, :width]
    size = [max(multiple, round(side / multiple) * multiple) for side in (height, width)]
    return resize(recipe.translate(resize(images, size), direction), (height, width))


class TrainedModel:
    """A trained recipe with its training config, the image conversions, and the requests it refuses.

    ``gantrain.load`` returns one; the commands call :meth:`samples` and :meth:`translations`.
    """

    def __init__(self, trained: Trained, device: torch.device):
        self.recipe = trained.recipe
        self.config = trained.config  # the training config stored in the checkpoint
        self.model = trained.model  # the model= choice it was trained with: "dcgan", "cyclegan", ...
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

    def samples(self, count: int, seed: int | None) -> torch.Tensor:
        """``count`` images in [-1, 1] from noise (models that generate)."""
        raise ConfigError(f"gantrain-sample draws from noise; the {self.model} model translates images.")

    def check(self, request: TranslationRequest) -> None:
        """Refuse a translation request this model cannot serve, saying what to pass instead."""
        raise ConfigError(
            f"gantrain-translate needs an image-to-image model; this checkpoint holds a {self.model} model: "
            f"use gantrain-sample for it."
        )

    def translations(self, images: torch.Tensor, request: TranslationRequest) -> torch.Tensor:
        """N x K x C x H x W translations in [-1, 1] of a batch of equal-size images, at their size."""
        raise NotImplementedError

    def describe(self, request: TranslationRequest) -> str:
        """The request in a few words, for the log."""
        return ""


class NoiseModel(TrainedModel):
    """GAN, DCGAN, WGAN, WGAN-GP, SNGAN: images from noise (the averaged generator where the run kept one)."""

    def samples(self, count: int, seed: int | None) -> torch.Tensor:
        """The same ``seed`` gives the same images; None draws from the global RNG."""
        if count < 1:
            raise ConfigError(f"Asked for {count} images: ask for at least 1.")
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        with torch.no_grad():
            return torch.cat(
                [self.recipe.sample(min(CHUNK, count - start), generator) for start in range(0, count, CHUNK)]
            )

    def generate(self, count: int, seed: int | None = None) -> torch.Tensor:
        """``count`` x C x H x W in [0, 1]; a ``seed`` gives gantrain-sample's images for that seed."""
        return to_unit_range(self.samples(count, seed))


class TranslationModel(TrainedModel):
    """Images of any size translated A -> B or B -> A (CycleGAN, pix2pix)."""

    def check(self, request: TranslationRequest) -> None:
        if {"target", "reference"} & request.given:
            raise ConfigError(
                f"target= and reference= are for models that translate to named labels or domains; this "
                f"{self.model} model translates with direction=AtoB or direction=BtoA."
            )

    @torch.no_grad()
    def translations(self, images: torch.Tensor, request: TranslationRequest) -> torch.Tensor:
        return fit_and_translate(self.recipe, images, request.direction).unsqueeze(1)

    def describe(self, request: TranslationRequest) -> str:
        return request.direction

    def translate(self, images: Images, direction: str = "AtoB") -> torch.Tensor:
        """N x C x H x W in [0, 1], each the size of its input (pix2pix translates only as it was trained)."""
        try:
            direction = Direction(direction).value
        except ValueError:
            raise ConfigError(f"direction={direction!r}: choose AtoB or BtoA.") from None
        request = TranslationRequest(direction=direction)
        return to_unit_range(self.translations(self.as_batch(images), request)[:, 0])


class LabelTranslationModel(TrainedModel):
    """Images changed to named attributes or a named domain (StarGAN)."""

    @property
    def labels(self) -> list[str]:
        """The attribute or domain names that ``target`` chooses among."""
        return self.recipe.labels.names

    def check(self, request: TranslationRequest) -> None:
        if not request.target:
            raise ConfigError(
                f"The {self.model} model translates to named labels: pass target=<names>, chosen among "
                f"{', '.join(self.labels)} (several separated by commas where the model has attributes)."
            )
        if {"reference", "num_styles"} & request.given and not self.recipe.uses_references:
            raise ConfigError(
                f"reference= and num_styles= are for models with styles, such as StarGAN v2; the {self.model} "
                f"model has none."
            )
        if request.num_styles < 1:
            raise ConfigError(f"num_styles={request.num_styles} must be at least 1.")

    @torch.no_grad()
    def translations(self, images: torch.Tensor, request: TranslationRequest) -> torch.Tensor:
        """Through the model's training size and back to the input's."""
        height, width = images.shape[-2:]
        square = (self.recipe.image_size, self.recipe.image_size)
        references = None if request.references is None else request.references.to(images.device)
        translated = self.recipe.translate_named(resize(images, square), list(request.target), references,
                                                 request.num_styles)
        return resize(translated.flatten(0, 1), (height, width)).unflatten(0, translated.shape[:2])

    def describe(self, request: TranslationRequest) -> str:
        return f"to {','.join(request.target)}"

    def translate(self, images: Images, target: str | Sequence[str]) -> torch.Tensor:
        """N x C x H x W in [0, 1]: ``target`` names attributes to switch on (``-Name`` off; a list or
        ``"Blond_Hair,Young"``), the others keep what the classifier reads in each image."""
        request = TranslationRequest(target=target_names(target))
        if not request.target:
            raise ConfigError(f"Name a target among {', '.join(self.labels)}.")
        return to_unit_range(self.translations(self.as_batch(images), request)[:, 0])


class StyleTranslationModel(LabelTranslationModel):
    """Images rendered in a domain, in the style of reference images or of random codes (StarGAN v2)."""

    @property
    def domains(self) -> list[str]:
        return self.recipe.labels.names

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
            styles = fit_references(image_list(references, self.channels), self.recipe.image_size)
        request = TranslationRequest(target=target_names(target), references=styles, num_styles=num_styles)
        with torch.random.fork_rng(enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            translated = self.translations(batch, request)
        return to_unit_range(translated)
