"""What several test files share: building recipes from their YAML, running the real command line,
reading back what a run wrote.  Fixtures live in ``conftest.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

import gantrain
from gantrain.build import build, checked_model
from gantrain.recipes.base import OptimizerFactory, Recipe

CONFIGS = Path(gantrain.__file__).parent / "configs"


def model_settings(name: str) -> dict[str, Any]:
    """The ``model`` section of ``configs/model/<name>.yaml``: the family's defaults and ``_target_``."""
    return OmegaConf.to_container(OmegaConf.load(CONFIGS / "model" / f"{name}.yaml").model)


def build_model(name: str, image_shape: tuple[int, ...], make_optimizer: OptimizerFactory, **overrides: Any) -> Recipe:
    """The recipe of ``model=<name>`` with its YAML's settings and ``overrides``, as ``gantrain`` builds it."""
    settings = checked_model(OmegaConf.create(model_settings(name) | overrides))
    return build(settings, "object", image_shape=image_shape, make_optimizer=make_optimizer)
