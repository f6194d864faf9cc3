"""``gantrain-sample``: generated images from a checkpoint, using only the config stored in it."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig
from torchvision.utils import save_image

from gantrain.api import load
from gantrain.build import answered_version, report_user_errors, require
from gantrain.config import register_configs
from gantrain.data import samples_judge
from gantrain.run_log import progress

log = logging.getLogger(__name__)
register_configs()


@report_user_errors
def sample(cfg: DictConfig) -> dict[str, float] | None:
    """Write ``num_samples`` PNG images and ``grid.png``; where the data has a judge, also its verdict."""
    require(cfg, "gantrain-sample", ("checkpoint",), "checkpoint=outputs/dcgan/shapes/<run> num_samples=64")
    model = load(cfg.checkpoint, cfg.device.type)
    images = model.samples(cfg.num_samples, cfg.seed)
    output = Path(cfg.output)
    output.mkdir(parents=True, exist_ok=True)
    for index, image in progress(enumerate(images), len(images), "writing samples", log):
        save_image(image, output / f"{index:05d}.png", normalize=True, value_range=(-1, 1))
    save_image(images, output / "grid.png", nrow=8, normalize=True, value_range=(-1, 1))
    log.info("Wrote %d images and grid.png to %s (step %d of %s)", len(images), output, model.step, cfg.checkpoint)

    judge = samples_judge(model.config.dataset)
    if judge is None:
        return None
    summary = judge(images.float().cpu())
    (output / "judge.json").write_text(json.dumps(summary, indent=2))
    log.info("Shapes judge: %s", ", ".join(f"{k} {v:.3f}" for k, v in summary.items()))
    return summary


@hydra.main(version_base="1.3", config_path="configs", config_name="sample")
def run(cfg: DictConfig) -> None:
    sample(cfg)


def main() -> None:
    if not answered_version():
        run()


if __name__ == "__main__":
    main()
