"""``gantrain-translate``: translate an image or a folder with a CycleGAN or pix2pix checkpoint.

Images of any size work: for a generator that needs sides in multiples of 4
(CycleGAN) the image is reflection-padded and the output cropped back; for one
that needs larger multiples (a U-Net) it is resized to the nearest multiples and
the output resized back to the original size.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import hydra
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from PIL import Image, UnidentifiedImageError
from torchvision.transforms.functional import pil_to_tensor
from torchvision.utils import save_image

from gantrain.build import build_recipe, report_user_errors
from gantrain.checkpoint import load_checkpoint
from gantrain.config import register_configs
from gantrain.data.images import PIL_MODE_BY_CHANNELS, list_images
from gantrain.errors import ConfigError, DatasetError
from gantrain.recipes.base import ImageToImage
from gantrain.trainer import resolve_device

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


def load_image(file: Path, channels: int) -> torch.Tensor:
    """C x H x W in [-1, 1], converted to the model's channel count."""
    try:
        with Image.open(file) as image:
            tensor = pil_to_tensor(image.convert(PIL_MODE_BY_CHANNELS[channels]))
    except (UnidentifiedImageError, OSError) as error:
        raise DatasetError(f"Cannot read {file} as an image ({error}); remove it or fix it.") from None
    return tensor.float() / 127.5 - 1.0


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
    resized = F.interpolate(images, size=size, mode="bicubic", antialias=True, align_corners=False)
    translated = recipe.translate(resized.clamp(-1, 1), direction)
    return F.interpolate(translated, size=(height, width), mode="bicubic", antialias=True, align_corners=False)


@report_user_errors
def translate(cfg: DictConfig) -> list[Path]:
    """Writes one PNG per input under ``output`` (same relative paths); returns their paths."""
    state = load_checkpoint(cfg.checkpoint)
    train_cfg = OmegaConf.create(state["config"])
    recipe = build_recipe(train_cfg)
    if not isinstance(recipe, ImageToImage):
        raise ConfigError(
            f"gantrain-translate needs an image-to-image model; {cfg.checkpoint} holds a "
            f"{state['choices']['model']} model: use gantrain-sample for it."
        )
    recipe.load_state_dict(state["recipe"])
    device = resolve_device(cfg.device)
    recipe.to(device).eval()

    root, files = input_files(cfg.input)
    output = Path(cfg.output)
    by_size: dict[tuple[int, ...], list[tuple[Path, torch.Tensor]]] = defaultdict(list)
    for file in files:
        image = load_image(file, train_cfg.dataset.channels)
        by_size[tuple(image.shape)].append((file, image))

    written = []
    with torch.no_grad():
        for group in by_size.values():
            for start in range(0, len(group), cfg.batch_size):
                chunk = group[start : start + cfg.batch_size]
                inputs = torch.stack([image for _, image in chunk]).to(device)
                outputs = fit_and_translate(recipe, inputs, cfg.direction.value).float().cpu()
                for (file, image), result in zip(chunk, outputs):
                    target = (output / file.relative_to(root)).with_suffix(".png")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    save_image(result, target, normalize=True, value_range=(-1, 1))
                    if cfg.side_by_side:
                        pair = output / "side_by_side" / file.relative_to(root).with_suffix(".png")
                        pair.parent.mkdir(parents=True, exist_ok=True)
                        save_image(torch.cat([image, result], -1), pair, normalize=True, value_range=(-1, 1))
                    written.append(target)
    log.info("Translated %d images %s into %s", len(written), cfg.direction.value, output)
    return written


@hydra.main(version_base="1.3", config_path="configs", config_name="translate")
def main(cfg: DictConfig) -> None:
    translate(cfg)


if __name__ == "__main__":
    main()
