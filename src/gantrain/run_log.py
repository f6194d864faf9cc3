"""What a run writes for people to look at: TensorBoard events and PNG sample grids."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams
from torchvision.utils import make_grid, save_image

SAMPLES_DIR = "samples"

# One chart with both players' losses: the first thing to look at in a GAN run.
CUSTOM_SCALARS = {
    "GAN": {
        "generator and discriminator losses": ["Multiline", ["loss/generator", "loss/discriminator"]],
        "discriminator outputs (equilibrium 0.5)": ["Multiline", ["discriminator/D(x)", "discriminator/D(G(z))"]],
    }
}


def flat_hyperparameters(config: dict, prefix: str = "") -> dict[str, float | int | bool | str]:
    """``{"optimizer": {"lr": 2e-4}}`` as ``{"optimizer.lr": 2e-4}``, in the types HParams takes.

    Hydra's ``_target_`` / ``_partial_`` keys are left out; lists and nulls become text.
    """
    values: dict[str, float | int | bool | str] = {}
    for key, value in config.items():
        if str(key).startswith("_"):
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            values |= flat_hyperparameters(value, f"{name}.")
        else:
            values[name] = value if isinstance(value, (float, int, bool, str)) else str(value)
    return values


class RunLogger:
    """TensorBoard writer of one run directory, plus the same grids as PNG files."""

    def __init__(self, run_dir: Path, purge_step: int | None = None):
        self.run_dir = run_dir
        self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=purge_step)
        self.latest: dict[str, float] = {}  # the last value written under each scalar tag

    def scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)
        self.latest.update(values)

    def images(self, batches: dict[str, torch.Tensor], step: int) -> None:
        """One grid per named batch of images in [-1, 1].

        N x C x H x W batches are laid out 8 to a row; N x K x C x H x W ones one row of K per input.
        """
        folder = self.run_dir / SAMPLES_DIR
        folder.mkdir(exist_ok=True)
        for name, images in batches.items():
            per_row = images.size(1) if images.dim() == 5 else 8
            images = images.detach().float().cpu().flatten(0, images.dim() - 4)
            grid = make_grid(images, nrow=per_row, normalize=True, value_range=(-1, 1))
            self.writer.add_image(f"samples/{name}", grid, step)
            save_image(grid, folder / f"{name}_{step:07d}.png")

    def describe_run(self, config_yaml: str) -> None:
        """The composed config as text and the custom-scalars layout, written once per run."""
        self.writer.add_text("config", "    " + config_yaml.replace("\n", "\n    "), 0)
        self.writer.add_custom_scalars(CUSTOM_SCALARS)

    def hyperparameters(self, values: dict[str, float | int | bool | str], metrics: list[str]) -> None:
        """The HParams plugin's record of this run, in the run's own event file (no sub-run).

        ``metrics`` are scalar tags already logged: TensorBoard shows their last values,
        so ``tensorboard --logdir`` on a sweep compares its runs side by side.
        """
        for summary in hparams(values, dict.fromkeys(metrics, 0.0)):
            self.writer.file_writer.add_summary(summary)

    def close(self) -> None:
        self.writer.close()
