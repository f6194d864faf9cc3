"""``gantrain-sample``: generated images from a checkpoint, using only the config stored in it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from torchvision.utils import save_image

from gantrain.build import build_recipe, report_user_errors
from gantrain.checkpoint import load_checkpoint
from gantrain.config import register_configs
from gantrain.data.shapes import ShapesDataset, judge_summary
from gantrain.errors import ConfigError
from gantrain.recipes.base import NoiseToImage
from gantrain.trainer import resolve_device

log = logging.getLogger(__name__)
register_configs()


@report_user_errors
def sample(cfg: DictConfig) -> dict[str, float] | None:
    """Write ``num_samples`` PNG images and ``grid.png``; for shapes data also the judge's verdict."""
    state = load_checkpoint(cfg.checkpoint)
    train_cfg = OmegaConf.create(state["config"])
    recipe = build_recipe(train_cfg)
    if not isinstance(recipe, NoiseToImage):
        raise ConfigError(f"gantrain-sample draws from noise; the {state['choices']['model']} model translates images.")
    recipe.load_state_dict(state["recipe"])
    recipe.to(resolve_device(cfg.device.type)).eval()

    generator = torch.Generator().manual_seed(cfg.seed)
    images = torch.cat([recipe.sample(min(256, cfg.num_samples - i), generator) for i in range(0, cfg.num_samples, 256)])
    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    for index, image in enumerate(images):
        save_image(image, output / f"{index:05d}.png", normalize=True, value_range=(-1, 1))
    save_image(images, output / "grid.png", nrow=8, normalize=True, value_range=(-1, 1))
    log.info("Wrote %d images and grid.png to %s (step %d of %s)", len(images), output, state["step"], cfg.checkpoint)

    if train_cfg.dataset._target_ != f"{ShapesDataset.__module__}.{ShapesDataset.__name__}":
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
