"""``gantrain-sample``: generated images from a checkpoint, using only the config stored in it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from torchvision.utils import save_image

from gantrain.build import report_user_errors
from gantrain.config import register_configs
from gantrain.data.shapes import ShapesDataset, judge_summary
from gantrain.device import resolve_device
from gantrain.errors import ConfigError
from gantrain.recipes.base import NoiseToImage
from gantrain.trained import load_trained

log = logging.getLogger(__name__)
register_configs()

CHUNK = 256  # images generated at once: bounds the memory whatever the count


def generate(recipe: NoiseToImage, count: int, seed: int | None) -> torch.Tensor:
    """``count`` images in [-1, 1]; the same ``seed`` gives the same images, None draws from the global RNG."""
    if count < 1:
        raise ConfigError(f"Asked for {count} images: ask for at least 1.")
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    return torch.cat([recipe.sample(min(CHUNK, count - start), generator) for start in range(0, count, CHUNK)])


@report_user_errors
def sample(cfg: DictConfig) -> dict[str, float] | None:
    """Write ``num_samples`` PNG images and ``grid.png``; for shapes data also the judge's verdict."""
    trained = load_trained(cfg.checkpoint, resolve_device(cfg.device.type))
    if not isinstance(trained.recipe, NoiseToImage):
        raise ConfigError(f"gantrain-sample draws from noise; the {trained.model} model translates images.")

    images = generate(trained.recipe, cfg.num_samples, cfg.seed)
    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
        save_image(image, output / f"{index:05d}.png", normalize=True, value_range=(-1, 1))
    save_image(images, output / "grid.png", nrow=8, normalize=True, value_range=(-1, 1))
    log.info("Wrote %d images and grid.png to %s (step %d of %s)", len(images), output, trained.step, cfg.checkpoint)

    if trained.config.dataset._target_ != f"{ShapesDataset.__module__}.{ShapesDataset.__name__}":
        return None
    summary = judge_summary(images.float().cpu())
    (output / "judge.json").write_text(json.dumps(summary, indent=2))
    log.info("Shapes judge: %s", ", ".join(f"{k} {v:.3f}" for k, v in summary.items()))
    return summary


@hydra.main(version_base="1.3", config_path="configs", config_name="sample")
def main(cfg: DictConfig) -> None:
    sample(cfg)


if __name__ == "__main__":
    main()
