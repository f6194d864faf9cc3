"""What a run writes for people to look at: TensorBoard events, ``metrics.csv`` and PNG sample grids."""

from __future__ import annotations

import csv
import io
import logging
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import torch
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams
from torchvision.utils import make_grid, save_image
from tqdm import tqdm

T = TypeVar("T")
PROGRESS_LINES = 10  # log lines of a long job without a terminal, one per tenth

SAMPLES_DIR = "samples"
METRICS_CSV = "metrics.csv"


def duration(seconds: float) -> str:
    """``4 min 05 s``, ``1 h 02 min`` or ``12 s``."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def progress(items: Iterable[T], total: int, what: str, log: logging.Logger) -> Iterator[T]:
    """``items``, with a progress bar on a terminal, else a log line at every tenth (nohup, SLURM, CI)."""
    if sys.stderr.isatty():
        yield from tqdm(items, total=total, desc=what, dynamic_ncols=True)
        return
    marks = {max(1, round(total * k / PROGRESS_LINES)) for k in range(1, PROGRESS_LINES + 1)}
    for done, item in enumerate(items, start=1):
        yield item
        if done in marks:
            log.info("%s: %d of %d", what, done, total)


def read_metrics_table(path: Path) -> dict[int, dict[str, float]]:
    """The rows of a ``metrics.csv``: step -> tag -> value (empty cells left out)."""
    rows: dict[int, dict[str, float]] = {}
    with open(path, newline="") as file:
        for row in csv.DictReader(file):
            step = int(row.pop("step"))
            rows[step] = {tag: float(value) for tag, value in row.items() if value != ""}
    return rows

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
        """``purge_step``: a resumed run drops what the stopped one logged from that step on (TensorBoard's
        purge, and the same rows of ``metrics.csv``)."""
        self.run_dir = run_dir
        self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=purge_step)
        self.latest: dict[str, float] = {}  # the last value written under each scalar tag
        self.table: dict[int, dict[str, float]] = {}  # metrics.csv: step -> tag -> value
        if purge_step is not None and (run_dir / METRICS_CSV).is_file():
            self.table = {s: row for s, row in read_metrics_table(run_dir / METRICS_CSV).items() if s < purge_step}

    def scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)
        self.latest.update(values)
        self.table.setdefault(step, {}).update(values)

    def write_table(self) -> None:
        """Every scalar so far as ``metrics.csv``: one row per step logged, one column per tag."""
        tags = sorted({tag for row in self.table.values() for tag in row})
        text = io.StringIO()
        writer = csv.DictWriter(text, ["step", *tags])
        writer.writeheader()
        for step in sorted(self.table):
            writer.writerow({"step": step, **self.table[step]})
        path = self.run_dir / METRICS_CSV
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(text.getvalue())
        temporary.replace(path)

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
        self.write_table()
        self.writer.close()
