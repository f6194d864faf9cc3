"""``gantrain-translate``: translate an image or a folder with a trained checkpoint.

CycleGAN and pix2pix translate in a ``direction`` (AtoB or BtoA).  StarGAN
translates to named attributes or a domain (``target=Blond_Hair,Young``), and
StarGAN v2 to a domain in the style of ``reference`` images or of ``num_styles``
random codes.  Images of any size work (:mod:`gantrain.inference` fits them to the
generator and the output back to the input's size).
"""

from __future__ import annotations

import logging
import sys
from collections import defaultdict
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from torchvision.utils import save_image

from gantrain.api import load
from gantrain.build import answered_version, report_user_errors, require
from gantrain.config import register_configs
from gantrain.data.image_files import list_images, read_image
from gantrain.errors import DatasetError
from gantrain.inference import TranslationRequest, fit_references, target_names
from gantrain.run_log import progress

log = logging.getLogger(__name__)
register_configs()


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


def output_names(file: Path, count: int, references: list[Path]) -> list[Path]:
    """One name per translation of ``file``: itself, or suffixed by the reference or style number."""
    if references:
        return [file.with_name(f"{file.stem}_{reference.stem}.png") for reference in references]
    if count == 1:
        return [file.with_suffix(".png")]
    return [file.with_name(f"{file.stem}_style{k}.png") for k in range(count)]


def request_of(cfg: DictConfig, references: torch.Tensor | None) -> TranslationRequest:
    """The command's arguments as a request, remembering which ones the user set."""
    given = {"target": bool(cfg.target), "reference": bool(cfg.reference), "num_styles": cfg.num_styles != 1}
    return TranslationRequest(
        direction=cfg.direction.value,
        target=target_names(cfg.target),
        references=references,
        num_styles=cfg.num_styles,
        given=frozenset(name for name, set_ in given.items() if set_),
    )


@report_user_errors
def translate(cfg: DictConfig) -> list[Path]:
    """Writes PNGs under ``output`` (the inputs' relative paths); returns their paths."""
    require(cfg, "gantrain-translate", ("checkpoint", "input"),
            "checkpoint=outputs/cyclegan/horse2zebra/<run> input=horse.jpg direction=AtoB")
    model = load(cfg.checkpoint, cfg.device.type)
    model.check(request_of(cfg, None))

    root, files = input_files(cfg.input)
    reference_files = input_files(cfg.reference)[1] if cfg.reference else []
    references = None
    if reference_files:
        references = fit_references([read_image(f, model.channels) for f in reference_files], model.recipe.image_size)
    request = request_of(cfg, references)

    by_size: dict[tuple[int, ...], list[tuple[Path, torch.Tensor]]] = defaultdict(list)
    for file in files:
        image = read_image(file, model.channels)
        by_size[tuple(image.shape)].append((file, image))

    output = Path(cfg.output)
    written = []
    chunks = [group[start : start + cfg.batch_size] for group in by_size.values()
              for start in range(0, len(group), cfg.batch_size)]
    for chunk in progress(chunks, len(chunks), f"translating {len(files)} images", log):
        inputs = torch.stack([image for _, image in chunk]).to(model.device)
        torch.manual_seed(cfg.seed)  # the same random styles for every batch
        results = model.translations(inputs, request)
        for (file, image), translations in zip(chunk, results.float().cpu()):
            relative = file.relative_to(root)
            for name, result in zip(output_names(relative, len(translations), reference_files), translations):
                target = output / name
                target.parent.mkdir(parents=True, exist_ok=True)
                save_image(result, target, normalize=True, value_range=(-1, 1))
                written.append(target)
            if cfg.side_by_side:
                pair = output / "side_by_side" / relative.with_suffix(".png")
                pair.parent.mkdir(parents=True, exist_ok=True)
                row = torch.cat([image, *translations], -1)
                save_image(row, pair, normalize=True, value_range=(-1, 1))
    log.info("Wrote %d translations (%s) of %d images into %s", len(written), model.describe(request), len(files),
             output)
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
    if answered_version():
        return
    sys.argv[1:] = [quote_target_list(argument) for argument in sys.argv[1:]]
    run()


if __name__ == "__main__":
    main()
