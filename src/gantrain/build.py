"""Config -> objects: the dataset, the recipe with its optimizers, and user-facing error handling."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import Dataset

from gantrain.config import LabelsConfig
from gantrain.errors import ConfigError, GantrainError
from gantrain.recipes.base import Recipe

T = TypeVar("T")


def build(node: DictConfig, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, letting our own errors through instead of Hydra's wrapper."""
    try:
        return instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, GantrainError):
            raise cause from None
        raise


def image_shape(cfg: DictConfig) -> tuple[int, int, int]:
    return (cfg.dataset.channels, cfg.dataset.image_size, cfg.dataset.image_size)


def build_dataset(cfg: DictConfig, **overrides: Any) -> Dataset:
    """The configured dataset; ``overrides`` replace config values (``split="test"``)."""
    return build(cfg.dataset, **overrides)


def build_recipe(cfg: DictConfig) -> Recipe:
    """The model config's target, given the image shape and an optimizer factory."""
    return build(cfg.model, image_shape=image_shape(cfg), make_optimizer=build(cfg.optimizer))


def pairing_error(choices: dict[str, str], needs: str, examples: str) -> ConfigError:
    return ConfigError(
        f"model={choices['model']} trains on {needs}, which dataset={choices['dataset']} does not provide: "
        f"choose a dataset such as {examples}."
    )


def attach_labels(cfg: DictConfig, dataset: Dataset, choices: dict[str, str]) -> None:
    """Multi-domain models are built for the dataset's labels: store them in ``model.labels``.

    The stored config then rebuilds the same networks for resume and inference, without the data.
    """
    if "labels" not in cfg.model:
        return
    names = list(getattr(dataset, "label_names", None) or [])
    if not names:
        raise pairing_error(
            choices,
            "images labelled with attributes or domains",
            "celeba (with dataset.attributes), afhq, domains, shapes_attributes, shapes_domains",
        )
    cfg.model.labels = LabelsConfig(names, [list(group) for group in dataset.label_groups], bool(dataset.multi_label))


def report_user_errors(entry: Callable[..., T]) -> Callable[..., T]:
    """Show a :class:`GantrainError` as one paragraph on stderr and exit 2, without a traceback."""

    @functools.wraps(entry)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return entry(*args, **kwargs)
        except GantrainError as error:
            print(f"gantrain: error: {error}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper
