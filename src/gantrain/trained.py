"""A trained run, ready for inference: the one way every command after training reads a checkpoint.

``gantrain-translate``, ``gantrain-sample``, ``gantrain-eval``, ``gantrain-export`` and
``gantrain.load`` all call :func:`load_trained`, so they rebuild the same networks from
the config stored in the checkpoint and put them on the device in the same mode.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from gantrain.build import build_recipe
from gantrain.checkpoint import find_checkpoint, load_checkpoint
from gantrain.recipes.base import Recipe


@dataclass
class Trained:
    """A trained recipe on its device in eval mode, with what the checkpoint says about it."""

    recipe: Recipe
    config: DictConfig  # the training config stored in the checkpoint
    model: str  # the model= choice it was trained with, e.g. "cyclegan"
    dataset: str  # the dataset= choice it was trained on
    step: int
    path: Path  # the checkpoint file


def load_trained(
    checkpoint: str | os.PathLike, device: torch.device, dataset_overrides: Mapping[str, Any] | None = None
) -> Trained:
    """The recipe in a checkpoint file or run directory, with its weights, on ``device`` in eval mode.

    ``dataset_overrides`` replace values of the stored dataset config (``path``, for data
    that moved since training).
    """
    path = find_checkpoint(checkpoint, key="checkpoint")
    state = load_checkpoint(path, key="checkpoint")
    config = OmegaConf.create(state["config"])
    for key, value in (dataset_overrides or {}).items():
        OmegaConf.update(config, f"dataset.{key}", value, merge=False, force_add=True)
    recipe = build_recipe(config)
    recipe.load_state_dict(state["recipe"])
    recipe.to(device).eval()
    choices = state["choices"]
    return Trained(recipe, config, choices["model"], choices.get("dataset", ""), int(state["step"]), path)
