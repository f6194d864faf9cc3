"""Config -> objects: the dataset, the recipe with its optimizers, and user-facing error handling."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError
from torch.utils.data import Dataset

from gantrain.config import model_schema
from gantrain.data.image_files import BadImageFile
from gantrain.data.in_memory import skipping_bad_files
from gantrain.errors import ConfigError, DatasetError, GantrainError
from gantrain.labels import LabelsConfig
from gantrain.options import BadFilePolicy
from gantrain.recipes.base import Recipe

log = logging.getLogger(__name__)
T = TypeVar("T")

RENAMED_MODEL_KEYS = {"gp_weight": "lambda_gp", "d_layers": "n_layers_d"}
"""Model settings renamed so that one setting has one name in every family: old name -> new name.

The old names still work, with a warning, in stored configs and on the command line (one release)."""


def build(node: DictConfig, convert: str = "all", **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, letting our own errors through instead of Hydra's wrapper."""
    try:
        return instantiate(node, _convert_=convert, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, GantrainError):
            raise cause from None
        raise


def image_shape(cfg: DictConfig) -> tuple[int, int, int]:
    return (cfg.dataset.channels, cfg.dataset.image_size, cfg.dataset.image_size)


def build_dataset(cfg: DictConfig, **overrides: Any) -> Dataset:
    """The configured dataset; ``overrides`` replace config values (``split="test"``).

    Under ``trainer.bad_files=skip`` a bad file met while keeping the images in memory is skipped with a
    warning (and again, counted, when a batch draws it), as it would be without ``dataset.in_memory``.
    """
    with skipping_bad_files(OmegaConf.select(cfg, "trainer.bad_files") == BadFilePolicy.skip):
        try:
            return build(cfg.dataset, **overrides)
        except BadImageFile as error:  # met while keeping the images in memory, under trainer.bad_files=fail
            raise DatasetError(f"{error} Or set trainer.bad_files=skip to train without it (skipped and counted).") \
                from None


def renamed_model_keys(model: DictConfig) -> DictConfig:
    """``model`` with settings stored under an old name moved to the current one (a warning for each)."""
    old_names = [key for key in RENAMED_MODEL_KEYS if key in model]
    if not old_names:
        return model
    values = OmegaConf.to_container(model)
    for old in old_names:
        new = RENAMED_MODEL_KEYS[old]
        log.warning("model.%s is now called model.%s; the old name will stop working in the next release.", old, new)
        value = values.pop(old)
        values.setdefault(new, value)
    return OmegaConf.create(values)


def checked_model(model: DictConfig) -> DictConfig:
    """The model config checked against its recipe's keyword arguments (their names and types).

    Every setting must be given (the YAML holds them all; a stored config may lack those its recipe
    added later), none may be unknown, and each must have its argument's type; a mistake is one
    paragraph naming the key.
    """
    model = renamed_model_keys(model)
    try:
        schema = model_schema(model._target_)
    except (ImportError, AttributeError, ValueError) as error:
        raise ConfigError(
            f"model._target_={model.get('_target_')} is not a recipe class that gantrain can import ({error}): "
            f"name a class in gantrain.recipes, e.g. gantrain.recipes.dcgan.DCGAN."
        ) from None
    settings = ", ".join(name for name in schema.__dataclass_fields__ if name != "_target_")
    try:
        checked = OmegaConf.merge(OmegaConf.structured(schema), model)
    except ConfigKeyError as error:
        raise ConfigError(
            f"model.{error.key} is not a setting of {model._target_}; its settings are {settings}."
        ) from None
    except (ValidationError, OmegaConfBaseException) as error:
        value = OmegaConf.select(model, str(error.full_key), default=None)
        raise ConfigError(
            f"model.{error.full_key}={value} does not fit: {str(error.msg).splitlines()[0]}. Set a value of the right type "
            f"(see configs/model/ for the defaults)."
        ) from None
    recipe = get_object(checked._target_)
    older = getattr(recipe, "settings_added_later", {})  # a stored config of an earlier release
    for key in OmegaConf.missing_keys(checked) & older.keys():
        checked[key] = older[key]
    missing = sorted(OmegaConf.missing_keys(checked))
    if missing:
        raise ConfigError(
            f"The model config sets no value for {', '.join(f'model.{key}' for key in missing)}, which "
            f"{model._target_} needs: add them to its YAML file in configs/model/."
        )
    return checked


def build_recipe(cfg: DictConfig) -> Recipe:
    """The model config's target, given the image shape and an optimizer factory."""
    return build(
        checked_model(cfg.model), "object", image_shape=image_shape(cfg), make_optimizer=build(cfg.optimizer)
    )


def pairing_error(choices: dict[str, str], recipe: type[Recipe] | Recipe) -> ConfigError:
    """The model's data needs (``Recipe.data_needs``) that the chosen dataset does not meet."""
    return ConfigError(
        f"model={choices['model']} trains on {recipe.data_needs}, which dataset={choices['dataset']} does not "
        f"provide: choose a dataset such as {recipe.example_datasets}."
    )


def attach_labels(cfg: DictConfig, dataset: Dataset, choices: dict[str, str]) -> None:
    """Multi-domain models are built for the dataset's labels: store them in ``model.labels``.

    The stored config then rebuilds the same networks for resume and inference, without the data.
    """
    if "labels" not in cfg.model:
        return
    names = list(getattr(dataset, "label_names", None) or [])
    if not names:
        raise pairing_error(choices, get_object(cfg.model._target_))
    cfg.model.labels = LabelsConfig(names, [list(group) for group in dataset.label_groups], bool(dataset.multi_label))


def require(cfg: DictConfig, command: str, keys: tuple[str, ...], example: str) -> None:
    """A command's mandatory keys, or one paragraph that names the missing ones and shows an example."""
    missing = [f"{key}=" for key in keys if OmegaConf.is_missing(cfg, key)]
    if missing:
        raise ConfigError(
            f"{command} needs {' and '.join(missing)}: for example {command} {example} "
            f"({command} --help lists every setting)."
        )


def answered_version() -> bool:
    """``--version`` on any command: gantrain's version, torch's and Hydra's, and the device it would use."""
    if "--version" not in sys.argv[1:]:
        return False
    import hydra
    import torch

    import gantrain
    from gantrain.device import resolve_device

    device = resolve_device("auto")
    name = f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)
    print(f"gantrain {gantrain.__version__}, torch {torch.__version__}, Hydra {hydra.__version__}; device=auto uses {name}")
    return True


def add_plus_for_open_settings(*prefixes: str) -> None:
    """Let ``model.use_dropout=false`` add to an open (initially empty) dict setting of a command.

    Hydra spells additions with a ``+``; a user who types the key as the help page shows it should not
    need to know that the dict starts empty.
    """
    sys.argv[1:] = [
        f"+{argument}" if argument.startswith(tuple(f"{prefix}." for prefix in prefixes)) else argument
        for argument in sys.argv[1:]
    ]


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
