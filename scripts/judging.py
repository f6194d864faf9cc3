"""What the held-out judge scripts share: the command line, the trained and untrained recipes, the table."""

from __future__ import annotations

import argparse

import torch
from omegaconf import OmegaConf

import gantrain.cli  # noqa: F401  (registers the config schemas)
from gantrain.build import build_dataset, build_recipe
from gantrain.checkpoint import load_checkpoint


def load_run(description: str):
    """Parse ``checkpoint [--count N]``; return the count, checkpoint state, test dataset, untrained and trained recipes.

    The untrained recipe is the same networks at the run's seed, for the baseline row.
    """
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a run directory or checkpoint file")
    parser.add_argument("--count", type=int, default=256, help="held-out items to translate")
    args = parser.parse_args()
    state = load_checkpoint(args.checkpoint)
    cfg = OmegaConf.create(state["config"])
    dataset = build_dataset(cfg, split="test")
    torch.manual_seed(cfg.seed)
    untrained = build_recipe(cfg)
    trained = build_recipe(cfg)
    trained.load_state_dict(state["recipe"])
    return min(args.count, len(dataset)), state, dataset, untrained, trained


def print_scores(title: str, rows: dict[str, dict[str, float]]) -> None:
    """One line per row label, one column per score."""
    names = list(next(iter(rows.values())))
    width = max(map(len, rows)) + 2
    print(title)
    print(f"{'':<{width}}" + "".join(f"{name:>16}" for name in names))
    for label, row in rows.items():
        print(f"{label:<{width}}" + "".join(f"{row[name]:>16.3f}" for name in names))
