"""``gantrain-import``: the official pretrained weights of a reference implementation as a gantrain run.

``source=`` names the model option the weights are for; its recipe says which files the reference
writes and where their tensors go (``official_files``, ``official_import``: see
:mod:`gantrain.nets.official_weights`).  The files are read with ``torch.load(weights_only=True)``,
every tensor is placed by name and shape, or named as ignored with the reason, and the run
directory written holds ``checkpoints/last.pt`` with the full training config of that model, so
that gantrain-translate, -sample, -eval, -export, ``gantrain.load`` and training from it
(``init_from=``) take it like any trained run.  It is a run at step 0: fresh optimizers and
schedules, the weights of the reference.
"""

from __future__ import annotations

import logging
import pickle
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import MissingConfigException
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from gantrain.build import (
    add_plus_for_open_settings,
    answered_version,
    build_recipe,
    checked_model,
    report_user_errors,
    require,
)
from gantrain.checkpoint import CHECKPOINT_DIR, LAST, UNREADABLE, save_checkpoint
from gantrain.config import register_configs
from gantrain.errors import CheckpointError, ConfigError
from gantrain.graphs import plain_scheduler_state, plain_state_dict
from gantrain.nets.official_weights import ImportRequest, OfficialFile, OfficialImport, Placement, Weights
from gantrain.options import Direction
from gantrain.recipes.base import Recipe

log = logging.getLogger(__name__)

MODEL_CONFIGS = Path(__file__).parent / "configs" / "model"
RUNNING_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")
UNUSED_STATISTICS = (
    "InstanceNorm running statistics, which the network does not use (it normalises each image by itself, "
    "and the reference's loader deletes them too)"
)
EXAMPLES = 4  # keys named in a message, per kind of problem

register_configs()


def official_recipe(source: str) -> type[Recipe]:
    """The recipe class of ``configs/model/<source>.yaml``, which must know its reference's files."""
    importable = sorted(
        path.stem for path in MODEL_CONFIGS.glob("*.yaml")
        if hasattr(get_object(OmegaConf.load(path).model._target_), "official_import")
    )
    if source not in importable:
        raise ConfigError(
            f"source={source} is not a model whose official weights gantrain can import: choose source="
            f"{' or source='.join(importable)} (docs/pretrained.md)."
        )
    return get_object(OmegaConf.load(MODEL_CONFIGS / f"{source}.yaml").model._target_)


def newest(paths: Mapping[Path, str]) -> Path:
    """The file of the latest epoch or iteration among files of one kind (by the step in their names)."""
    return max(paths, key=lambda path: (paths[path] == "latest", int(paths[path]) if paths[path].isdigit() else 0))


def locate(location: Path, kinds: tuple[OfficialFile, ...], source: str) -> dict[OfficialFile, Path]:
    """The official files at ``location`` (a file, or a folder holding a release's or a run's files) by kind;
    in a folder, the newest of each kind."""
    expected = ", ".join(kind.name.format(step="<step>") for kind in kinds if not kind.ignored)
    if location.is_file():
        kind = next((kind for kind in kinds if kind.step(location.name) is not None), None)
        kind = kind or next((kind for kind in kinds if kind.any_name), None)
        if kind is None or kind.ignored:
            raise ConfigError(
                f"weights={location} is not a file of {source} networks by its name: the reference names them "
                f"{expected}. Rename it as the reference would, or pass the folder that holds the files."
            )
        return {kind: location}
    if not location.is_dir():
        raise ConfigError(f"weights={location} does not exist: pass an official weights file or the folder holding them.")
    found = {}
    for kind in kinds:
        steps = {path: step for path in location.iterdir() if (step := kind.step(path.name)) is not None}
        if steps:
            found[kind] = newest(steps)
    if all(kind.ignored for kind in found):
        raise ConfigError(
            f"weights={location} holds no {source} weights: the reference names its files {expected} (a published "
            f"model's may be named after the model; then pass the file itself)."
        )
    return found


def read_weights(path: Path, role: str) -> Weights:
    """A file's tensors by their state-dict names, read without executing anything stored in it."""
    unreadable = (
        f"Cannot read {path}: it is truncated, corrupt or not a PyTorch file ({{}}). Download it again "
        f"(docs/pretrained.md says where each release is published); a failed download can leave an HTML page "
        f"under the file's name."
    )
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        code = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if code is None:  # bytes that are no pickle at all, such as "Unsupported operand 60" for an HTML page
            found = re.search(r"WeightsUnpickler error:\s*(.+)", str(error))
            raise CheckpointError(unreadable.format(found[1] if found else type(error).__name__)) from None
        raise CheckpointError(
            f"Refusing to read {path}: besides tensors it holds a pickled Python object ({code[1]}) that only running "
            f"code could rebuild, so gantrain does not load it. The official files are plain state dicts; a file "
            f"saved with torch.save(model) must be saved again as torch.save(model.state_dict()) where its code is at "
            f"hand, and imported then."
        ) from None
    except UNREADABLE as error:
        raise CheckpointError(unreadable.format(str(error).splitlines()[0] if str(error) else type(error).__name__)) from None
    if not isinstance(loaded, Mapping):
        raise CheckpointError(f"{path} holds a {type(loaded).__name__}, not a state dict of named tensors.")
    return Weights(path, role, flattened(loaded))


def flattened(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A state dict, or a dict of state dicts (StarGAN v2), as one dict with dotted names."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat |= flattened(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def composed_training_config(overrides: list[str]) -> DictConfig:
    """``gantrain``'s training config for ``overrides``, with Hydra's record of the chosen options."""
    if GlobalHydra.instance().is_initialized():  # inside gantrain-import's own Hydra app: the same config tree
        return compose("train", overrides=overrides, return_hydra_config=True)
    with initialize_config_module("gantrain.configs", version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def training_config(source: str, plan: OfficialImport, model: Mapping[str, Any]) -> tuple[DictConfig, dict[str, str]]:
    """The complete training config of the imported model, and its config group choices, as a run stores them:
    the model's and dataset's options with the values the weights imply and ``model`` (the user's) on top."""
    try:
        config = composed_training_config([f"model={source}", f"dataset={plan.dataset}"])
    except MissingConfigException:
        raise ConfigError(
            f"dataset_option={plan.dataset} is not a dataset option of gantrain (see configs/dataset/)."
        ) from None
    choices = {
        group: choice for group, choice in config.hydra.runtime.choices.items()
        if not group.startswith("hydra") and "/" not in group
    }
    with open_dict(config):
        del config["hydra"]
    for key, value in plan.dataset_values.items():
        OmegaConf.update(config, f"dataset.{key}", value, merge=False)
    settings = {**OmegaConf.to_container(config.model, resolve=True), **plan.model, **model}
    config.model = checked_model(OmegaConf.create(settings))
    if plan.labels is not None:
        config.model.labels = plan.labels
    return config, choices


@dataclass
class Accounting:
    """Where every tensor of the official files went, and what in the recipe no file filled."""

    placed: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))  # (role, key) -> ours
    ignored: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # reason -> "file: key"
    misfits: dict[str, str] = field(default_factory=dict)  # "file: key" -> its shape and the network's
    misfit_destinations: set[str] = field(default_factory=set)  # network tensors that a misfit would have filled
    homeless: set[str] = field(default_factory=set)  # "file: key" with no place in the networks
    missing: list[str] = field(default_factory=list)  # network tensors that a file should have held
    untouched: list[str] = field(default_factory=list)  # recipe networks that no file filled

    def problems(self) -> list[str]:
        def examples(items: list[str]) -> str:
            return ", ".join(items[:EXAMPLES]) + (", ..." if len(items) > EXAMPLES else "")

        problems = []
        if self.misfits:
            problems.append(f"{len(self.misfits)} tensors have other shapes than the networks' "
                            f"({examples([f'{key} {shape}' for key, shape in self.misfits.items()])})")
        if self.homeless:
            problems.append(f"{len(self.homeless)} tensors of the files have no place in the networks "
                            f"({examples(sorted(self.homeless))})")
        if self.missing:
            problems.append(f"{len(self.missing)} tensors of the networks are not in the files ({examples(self.missing)})")
        return problems


def fill(recipe: Recipe, weights: dict[str, Weights], plan: OfficialImport) -> Accounting:
    """Copy the official tensors into the recipe's networks as the plan places them, accounting for each."""
    state = recipe.state_dict()
    accounting = Accounting()
    filled_networks = set()
    with torch.no_grad():
        for role, loaded in weights.items():
            remaining = dict(loaded.tensors)
            for placement in plan.placements[role]:
                keys = [key for key in remaining if key.startswith(placement.prefix)]
                for key in keys:
                    del remaining[key]
                names = {f"{loaded.path.name}: {key}" for key in keys}
                targets = kept_targets(recipe, placement)
                if placement.ignored and names:
                    accounting.ignored[placement.ignored] |= names
                elif not placement.ignored and not targets:
                    accounting.homeless |= names
                for target in targets:
                    place(recipe.get_submodule(target), target, placement, loaded, keys, state, accounting)
                    filled_networks.add(target)
            accounting.homeless |= {f"{loaded.path.name}: {key}" for key in remaining}
        for key, value in plan.counters.items():
            if key in state:
                state[key].fill_(value)
    filled = {name for names in accounting.placed.values() for name in names}
    accounted = filled | accounting.misfit_destinations
    weights_of = [key for key, value in state.items() if isinstance(value, torch.Tensor) and value.is_floating_point()]
    accounting.missing = [key for key in weights_of if key not in accounted
                          and any(key.startswith(f"{target}.") for target in filled_networks)]
    accounting.untouched = sorted({key.split(".")[0] for key in weights_of} - {key.split(".")[0] for key in filled})
    return accounting


def kept_targets(recipe: Recipe, placement: Placement) -> list[str]:
    """The placement's targets that the recipe keeps (an average that the run switched off is not there)."""
    kept = []
    for target in placement.targets:
        try:
            recipe.get_submodule(target)
        except AttributeError:
            continue
        kept.append(target)
    return kept


def place(
    network: nn.Module,
    target: str,
    placement: Placement,
    loaded: Weights,
    keys: list[str],
    state: dict[str, Any],
    accounting: Accounting,
) -> None:
    """The tensors ``keys`` of one official network into the recipe's ``target``, by the placement's layout."""
    layout = placement.layout(network)
    for key in keys:
        value, name = loaded.tensors[key], f"{loaded.path.name}: {key}"
        module, _, leaf = key.removeprefix(placement.prefix).rpartition(".")
        ours = layout.modules.get(module)
        destination = f"{target}.{ours}.{leaf}"
        if module in layout.unused:
            accounting.ignored[layout.unused[module]].add(name)
        elif ours is not None and destination in state and isinstance(value, torch.Tensor):
            if value.shape != state[destination].shape:
                accounting.misfits[name] = f"{tuple(value.shape)} for {destination} {tuple(state[destination].shape)}"
                accounting.misfit_destinations.add(destination)
            else:
                state[destination].copy_(value)
                accounting.placed[(loaded.role, key)].append(destination)
        elif ours is not None and leaf in RUNNING_STATISTICS and isinstance(network.get_submodule(ours), nn.InstanceNorm2d):
            accounting.ignored[UNUSED_STATISTICS].add(name)
        else:
            accounting.homeless.add(name)


def run_state(config: DictConfig, choices: dict[str, str], recipe: Recipe, imported: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint laid out as a training run writes it (``Trainer.state``), at step 0, with where it came from."""
    return {
        "config": OmegaConf.to_yaml(config, resolve=True),
        "choices": choices,
        "step": 0,
        "recipe": recipe.state_dict(),
        "optimizers": {name: plain_state_dict(optimizer) for name, optimizer in recipe.optimizers().items()},
        "schedulers": {name: plain_scheduler_state(scheduler) for name, scheduler in recipe.schedulers().items()},
        "scaler": torch.amp.GradScaler("cpu", enabled=False).state_dict(),
        "rng": {"torch": torch.get_rng_state()},
        "best": None,
        "imported": imported,
    }


@report_user_errors
def import_weights(cfg: DictConfig) -> Path:
    """Write the run directory ``output`` from the official weights; returns the checkpoint's path."""
    require(cfg, "gantrain-import", ("source", "weights", "output"),
            "source=cyclegan weights=checkpoints/horse2zebra_pretrained output=runs/horse2zebra")
    checkpoint = Path(cfg.output) / CHECKPOINT_DIR / LAST
    if checkpoint.exists():
        raise ConfigError(f"output={cfg.output} already holds a run ({checkpoint}): choose another output folder.")
    recipe_class = official_recipe(cfg.source)
    found = locate(Path(cfg.weights), recipe_class.official_files, cfg.source)
    for kind, path in found.items():
        if kind.ignored:
            log.info("Not read: %s (%s)", path, kind.ignored)
    weights = {kind.role: read_weights(path, kind.role) for kind, path in found.items() if not kind.ignored}
    request = ImportRequest(
        Path(cfg.weights),
        cfg.dataset_option,
        None if cfg.direction is None else Direction(cfg.direction),
        None if cfg.labels is None else tuple(cfg.labels),
        cfg.image_size,
    )
    plan = recipe_class.official_import(weights, request)
    config, choices = training_config(cfg.source, plan, cfg.model)
    torch.manual_seed(config.seed)  # networks that no file fills start as a training run's would
    recipe = build_recipe(config)
    accounting = fill(recipe, weights, plan)
    settings = " ".join(f"model.{key}={value}" for key, value in {**plan.model, **cfg.model}.items())
    if problems := accounting.problems():
        raise CheckpointError(
            f"The weights do not fit gantrain's {cfg.source} networks built with {settings}: {'; '.join(problems)}. "
            f"Check that source= names the family the files come from and that the settings given on the command "
            f"line describe their architecture (the others are read from the files)."
        )
    imported = {
        "source": cfg.source,
        "files": {role: str(loaded.path) for role, loaded in weights.items()},
        "ignored": {reason: len(keys) for reason, keys in accounting.ignored.items()},
        "initial_weights": accounting.untouched,
    }
    save_checkpoint(run_state(config, choices, recipe, imported), checkpoint)
    report(cfg, found, weights, plan, accounting, choices, settings)
    return checkpoint


def report(
    cfg: DictConfig,
    found: dict[OfficialFile, Path],
    weights: dict[str, Weights],
    plan: OfficialImport,
    accounting: Accounting,
    choices: dict[str, str],
    settings: str,
) -> None:
    """What went where, what was left out and why, what to do next."""
    log.info("Imported the official %s weights into %s (model=%s dataset=%s; %s)", cfg.source, cfg.output,
             choices["model"], choices["dataset"], settings)
    for kind, path in found.items():
        if not kind.ignored:
            placed = [key for role, key in accounting.placed if role == kind.role]
            networks = sorted({name.split(".")[0] for (role, _), names in accounting.placed.items()
                               if role == kind.role for name in names})
            log.info("  %s (%s): %d of its %d tensors into %s", path, kind.holds, len(placed),
                     len(weights[kind.role].tensors), ", ".join(networks))
    for reason, keys in accounting.ignored.items():
        log.info("  ignored %d tensors, %s (e.g. %s)", len(keys), reason, min(keys))
    if accounting.untouched:
        log.warning("  no file holds %s: they keep random initial weights (training from this run trains them "
                    "from scratch)", ", ".join(accounting.untouched))
    for note in plan.notes:
        log.info("  %s", note)
    log.info("Translate with: gantrain-translate checkpoint=%s input=<image or folder>", cfg.output)


@hydra.main(version_base="1.3", config_path="configs", config_name="import")
def run(cfg: DictConfig) -> None:
    import_weights(cfg)


def main() -> None:
    if answered_version():
        return
    add_plus_for_open_settings("model")
    run()


if __name__ == "__main__":
    main()
