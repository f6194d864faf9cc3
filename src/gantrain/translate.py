"""``gantrain-translate``: translate an image or a folder with a trained checkpoint.

CycleGAN and pix2pix translate in a ``direction`` (AtoB or BtoA).  StarGAN
translates to named attributes or a domain (``target=Blond_Hair,Young``), and
StarGAN v2 to a domain in the style of ``reference`` images or of ``num_styles``
random codes.

Images of any size work: for a generator that needs sides in multiples of 4
(CycleGAN) the image is reflection-padded and the output cropped back; for one
that needs larger multiples (a U-Net) or a fixed size (StarGAN's classifier,
StarGAN v2's style encoder) it is resized and the output resized back to the
original size.
"""

from __future__ import annotations

import logging
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import hydra
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from PIL import Image, UnidentifiedImageError
from torchvision.transforms.functional import pil_to_tensor
from torchvision.utils import save_image

from gantrain.build import report_user_errors
from gantrain.config import register_configs
from gantrain.data.images import PIL_MODE_BY_CHANNELS, list_images
from gantrain.device import resolve_device
from gantrain.errors import ConfigError, DatasetError
from gantrain.recipes.base import ImageToImage, MultiDomain, Recipe
from gantrain.trained import load_trained

log = logging.getLogger(__name__)
register_configs()

PAD_UP_TO = 4  # multiples up to this are reached by padding, larger ones by resizing


def input_files(location: str) -> tuple[Path, list[Path]]:
    """(folder the outputs mirror, image files) for an image file or a folder of images."""
    path = Path(location).expanduser()
    if path.is_file():
        return path.parent, [path]
    if path.is_dir():
        files = list_images(path)
        if files:
            return path, files
    raise DatasetError(
        f"No images at input={location}: pass an image file or a folder that holds images "
        f"(searched recursively, e.g. input=photos/ or input=photos/cat.jpg)."
    )


def image_to_tensor(image: Image.Image, channels: int) -> torch.Tensor:
    """C x H x W in [-1, 1], converted to the model's channel count."""
    return pil_to_tensor(image.convert(PIL_MODE_BY_CHANNELS[channels])).float() / 127.5 - 1.0


def load_image(file: Path, channels: int) -> torch.Tensor:
    """C x H x W in [-1, 1] from an image file, converted to the model's channel count."""
    try:
        with Image.open(file) as image:
            return image_to_tensor(image, channels)
    except (UnidentifiedImageError, OSError) as error:
        raise DatasetError(f"Cannot read {file} as an image ({error}); remove it or fix it.") from None


def resize(images: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    return F.interpolate(images, size=list(size), mode="bicubic", antialias=True, align_corners=False).clamp(
        -1, 1
    )


def fit_and_translate(recipe: ImageToImage, images: torch.Tensor, direction: str) -> torch.Tensor:
    """Translate a batch of equal-size images of any size; the output has the input's size."""
    height, width = images.shape[-2:]
    multiple = recipe.size_multiple
    if multiple <= PAD_UP_TO:
        pad_h, pad_w = -height % multiple, -width % multiple
        mode = "reflect" if min(height, width) > multiple else "replicate"
        padded = F.pad(images, (0, pad_w, 0, pad_h), mode=mode)
        return recipe.translate(padded, direction)[..., :height, :width]
    size = [max(multiple, round(side / multiple) * multiple) for side in (height, width)]
    return resize(recipe.translate(resize(images, size), direction), (height, width))


def fit_and_translate_named(
    recipe: MultiDomain,
    images: torch.Tensor,
    target: list[str],
    references: torch.Tensor | None,
    num_styles: int,
) -> torch.Tensor:
    """N x K x C x H x W translations at the input's size, through the model's training size."""
    height, width = images.shape[-2:]
    square = (recipe.image_size, recipe.image_size)
    translated = recipe.translate_named(resize(images, square), target, references, num_styles)
    return resize(translated.flatten(0, 1), (height, width)).unflatten(0, translated.shape[:2])


def fit_references(references: Sequence[torch.Tensor], image_size: int) -> torch.Tensor:
    """StarGAN v2's reference images, each C x H x W of any size, as one batch at the model's size."""
    return torch.stack([resize(image[None], (image_size, image_size))[0] for image in references])


def target_names(target: str | None) -> list[str]:
    return [name.strip() for name in (target or "").split(",") if name.strip()]


def check_request(cfg: DictConfig, recipe: Recipe, model: str) -> None:
    """Each family takes its own arguments; anything else is refused with what to use instead."""
    if isinstance(recipe, ImageToImage):
        if cfg.target or cfg.reference:
            raise ConfigError(
                f"target= and reference= are for StarGAN and StarGAN v2 models; this {model} model "
                f"translates with direction=AtoB or direction=BtoA."
            )
        return
    if not isinstance(recipe, MultiDomain):
        raise ConfigError(
            f"gantrain-translate needs an image-to-image model; {cfg.checkpoint} holds a "
            f"{model} model: use gantrain-sample for it."
        )
    if not target_names(cfg.target):
        raise ConfigError(
            f"The {model} model translates to named labels: pass target=<names>, chosen among "
            f"{', '.join(recipe.labels.names)} (several separated by commas where the model has attributes)."
        )
    if not recipe.uses_references and (cfg.reference or cfg.num_styles != 1):
        raise ConfigError(f"reference= and num_styles= are for StarGAN v2; the {model} model has no styles.")
    if cfg.num_styles < 1:
        raise ConfigError(f"num_styles={cfg.num_styles} must be at least 1.")


def output_names(file: Path, count: int, references: list[Path]) -> list[Path]:
    """One name per translation of ``file``: itself, or suffixed by the reference or style number."""
    if references:
        return [file.with_name(f"{file.stem}_{reference.stem}.png") for reference in references]
    if count == 1:
        return [file.with_suffix(".png")]
    return [file.with_name(f"{file.stem}_style{k}.png") for k in range(count)]


@report_user_errors
def translate(cfg: DictConfig) -> list[Path]:
    """Writes PNGs under ``output`` (the inputs' relative paths); returns their paths."""
    device = resolve_device(cfg.device.type)
    trained = load_trained(cfg.checkpoint, device)
    recipe = trained.recipe
    check_request(cfg, recipe, trained.model)

    channels = trained.config.dataset.channels
    root, files = input_files(cfg.input)
    reference_files = input_files(cfg.reference)[1] if cfg.reference else []
    references = None
    if reference_files:
        references = fit_references([load_image(f, channels) for f in reference_files], recipe.image_size)

    by_size: dict[tuple[int, ...], list[tuple[Path, torch.Tensor]]] = defaultdict(list)
    for file in files:
        image = load_image(file, channels)
        by_size[tuple(image.shape)].append((file, image))

    output = Path(cfg.output)
    written = []
    with torch.no_grad():
        for group in by_size.values():
            for start in range(0, len(group), cfg.batch_size):
                chunk = group[start : start + cfg.batch_size]
                inputs = torch.stack([image for _, image in chunk]).to(device)
                if isinstance(recipe, MultiDomain):
                    torch.manual_seed(cfg.seed)  # the same random styles for every batch
                    refs = None if references is None else references.to(device)
                    results = fit_and_translate_named(
                        recipe, inputs, target_names(cfg.target), refs, cfg.num_styles
                    )
                else:
                    results = fit_and_translate(recipe, inputs, cfg.direction.value).unsqueeze(1)
                for (file, image), translations in zip(chunk, results.float().cpu()):
                    relative = file.relative_to(root)
                    for name, result in zip(
                        output_names(relative, len(translations), reference_files), translations
                    ):
                        target = output / name
                        target.parent.mkdir(parents=True, exist_ok=True)
                        save_image(result, target, normalize=True, value_range=(-1, 1))
                        written.append(target)
                    if cfg.side_by_side:
                        pair = output / "side_by_side" / relative.with_suffix(".png")
                        pair.parent.mkdir(parents=True, exist_ok=True)
                        row = torch.cat([image, *translations], -1)
                        save_image(row, pair, normalize=True, value_range=(-1, 1))
    how = f"to {cfg.target}" if isinstance(recipe, MultiDomain) else cfg.direction.value
    log.info("Wrote %d translations (%s) of %d images into %s", len(written), how, len(files), output)
    return written


def quote_target_list(argument: str) -> str:
    """``target=Blond_Hair,Young`` would be a sweep to Hydra: pass the comma-separated names as one string."""
    key, _, value = argument.partition("=")
    if key == "target" and "," in value and value[:1] not in ("'", '"', "["):
        return f"target='{value}'"
    return argument


@hydra.main(version_base="1.3", config_path="configs", config_name="translate")
def run(cfg: DictConfig) -> None:
    translate(cfg)


def main() -> None:
    sys.argv[1:] = [quote_target_list(argument) for argument in sys.argv[1:]]
    run()


if __name__ == "__main__":
    main()
