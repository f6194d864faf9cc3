"""``gantrain``: compose the config with Hydra, build dataset and recipe, run the trainer."""

from __future__ import annotations

import logging
import random
import sys
import textwrap
from datetime import datetime
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import Dataset

from gantrain import distributed
from gantrain.build import (
    RENAMED_MODEL_KEYS,
    answered_version,
    attach_labels,
    build_dataset,
    build_recipe,
    checked_model,
    pairing_error,
    renamed_model_keys,
    report_user_errors,
)
from gantrain.checkpoint import CHECKPOINT_DIR, load_checkpoint
from gantrain.config import TrainConfig, register_configs
from gantrain.errors import CheckpointError, ConfigError, GantrainError, require_extra
from gantrain.evaluate import Evaluator, held_out_dataset
from gantrain.recipes.base import Recipe
from gantrain.trainer import Trainer


def run_directory(resume: str | None, new_run: str) -> str:
    """The run directory: a new one, or the one that holds the checkpoint being resumed."""
    if resume is None:
        return new_run
    path = Path(resume).expanduser()
    if path.is_file():
        path = path.parent.parent if path.parent.name == CHECKPOINT_DIR else path.parent
    return str(path)


def record_directory(resume: str | None) -> str:
    """Hydra's record of the composed config: a resumption adds its own beside the first."""
    return ".hydra" if resume is None else f".hydra/resumed_{datetime.now():%Y-%m-%d_%H-%M-%S}"


def swept_overrides() -> str:
    """This job's values of the parameters that ``hydra.sweeper.params`` searches, as a run name.

    Optuna sweeps name their runs with it: every override would exceed the file name limit.
    """
    hydra_cfg = HydraConfig.get()
    swept = set(hydra_cfg.sweeper.get("params") or {})
    return ",".join(o for o in hydra_cfg.overrides.task if o.split("=", 1)[0].lstrip("+~") in swept)


RESUMABLE_CHANGES = ("trainer.", "device.", "metrics.")
LIMITS = ("trainer.max_steps", "trainer.max_epochs")
INFO_FLAGS = {"-c", "--cfg", "-h", "--help", "--hydra-help", "-i", "--info"}  # print and exit: no training

log = logging.getLogger(__name__)

register_configs()
OmegaConf.register_new_resolver("gantrain_run_dir", run_directory, replace=True)
OmegaConf.register_new_resolver("gantrain_record_dir", record_directory, replace=True)
OmegaConf.register_new_resolver("gantrain_swept", swept_overrides, replace=True)
OmegaConf.register_new_resolver("gantrain_groups", lambda app: config_groups(app), replace=True)
# hydra/launcher=local_gpus: job n of a sweep sees GPU n mod (jobs at once)
OmegaConf.register_new_resolver("gantrain_job_gpu", lambda job, slots: str(int(job) % int(slots)), replace=True)


GROUP_NOTES = {
    "model": "the GAN family (configs/model/)",
    "dataset": "the data: embedded shapes*, folders, the official sets (configs/dataset/)",
    "optimizer": "the optimizer settings (each model brings its paper's)",
    "device": "where and how fast (device.* settings)",
    "tuning": "settings tuned for one model on one dataset, applied by themselves; ~tuning drops them",
    "hparams_search": "+hparams_search=<name>: an Optuna search over a returned metric",
    "hydra/launcher": "how a sweep's jobs run: joblib, local_gpus, slurm, submitit_local (extras needed)",
}


def config_groups(app: str) -> str:
    """The help page's list of config groups and their options, read from the config folder (so a new
    family or dataset shows up by itself), with the app's default choice of each in brackets."""
    root = Path(__file__).parent / "configs"
    defaults = {}
    for entry in OmegaConf.to_container(OmegaConf.load(root / f"{app}.yaml"), resolve=False).get("defaults", []):
        if isinstance(entry, dict):
            defaults |= {key.removeprefix("optional ").removeprefix("override "): str(v) for key, v in entry.items()}
    lines = []
    for group, note in GROUP_NOTES.items():
        options = sorted(path.stem for path in (root / group).glob("*.yaml"))
        if group == "hydra/launcher":
            options = sorted({*options, "joblib", "submitit_local", "submitit_slurm"})
        default = defaults.get(group, "")
        listed = ", ".join(f"[{option}]" if option == default else option for option in options)
        lines.append(f"{group}: {note}\n" + textwrap.fill(listed, 110, initial_indent="    ", subsequent_indent="    "))
    return "\n".join(lines)


def config_for_resume(cfg: DictConfig, state: dict[str, Any], overrides: list[str]) -> DictConfig:
    """The checkpoint's config, with the values the user set on this command line.

    ``trainer.*``, ``device.*`` and ``metrics.*`` may change (``trainer.max_steps=4000``
    trains longer), and so may the length of the recipe's learning-rate schedule
    (``Recipe.schedule_settings``: ``model.n_epochs_decay=200`` extends CycleGAN's decay).
    Other changes (the networks, the data, the optimizer, the seed) would not continue the
    same run: they are refused, listed, unless ``resume_allow_changes=true``.  Another config
    group option (``model=wgan`` for a DCGAN run) is always refused.
    """
    stored = OmegaConf.create(state["config"])
    schedule = tuple(f"model.{name}" for name in get_object(stored.model._target_).schedule_settings)
    stored.model = renamed_model_keys(stored.model)  # a checkpoint written before a setting was renamed
    stored = OmegaConf.merge(OmegaConf.structured(TrainConfig), stored)
    stored_choices = state["choices"]
    conflicts, changes = [], []
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group
        if key in ("resume", "resume_allow_changes"):
            continue
        if key in stored_choices:
            if override.value() != stored_choices[key]:
                conflicts.append(f"{key}={override.value()} (the run used {key}={stored_choices[key]})")
            continue
        new, old = OmegaConf.select(cfg, key), OmegaConf.select(stored, key)
        if not key.startswith(RESUMABLE_CHANGES + schedule) and new != old:
            changes.append(f"{key}: {old} -> {new}")
        OmegaConf.update(stored, key, new, merge=False)
    if conflicts:
        raise CheckpointError(
            f"Cannot resume {cfg.resume} with a different configuration: {'; '.join(conflicts)}. "
            f"Drop these overrides to continue the run, or start a new run without resume=."
        )
    if changes and not cfg.resume_allow_changes:
        raise CheckpointError(
            f"Resuming {cfg.resume} with settings that differ from the checkpoint's would not continue the same "
            f"run: {'; '.join(changes)}. Drop these overrides, pass resume_allow_changes=true to continue with "
            f"them anyway, or start a new run without resume=."
        )
    stored.resume = cfg.resume
    return stored


def start_from(recipe: Recipe, location: str) -> None:
    """The networks' weights of a trained or imported run (``init_from=``), for fine-tuning: the optimizers,
    schedules, pools and counters start afresh.  Weight averages absent from the source start from the
    first update, as in any run."""
    source = load_checkpoint(location, key="init_from")["recipe"]
    own = {key: value for key, value in recipe.state_dict().items() if not key.endswith("_extra_state")}
    missing = [key for key in own if key not in source and "_ema." not in key]
    misfit = [f"{key} {tuple(source[key].shape)} (here {tuple(value.shape)})" for key, value in own.items()
              if key in source and source[key].shape != value.shape]
    if missing or misfit:
        listed = "; ".join([*(f"missing {key}" for key in missing[:8]), *misfit[:8]])
        raise CheckpointError(
            f"init_from={location} holds other networks than this model config builds ({listed}). Start from a run "
            f"of the same model with the same model.* settings and dataset.image_size, or import the official "
            f"weights with gantrain-import first."
        )
    recipe.load_state_dict({key: source[key] for key in own if key in source}, strict=False)
    log.info("Starting from the weights of %s (networks only: fresh optimizers and schedule)", location)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def evaluator_for(cfg: DictConfig, recipe: Recipe, held_out: Dataset) -> Evaluator | None:
    """The held-out evaluation that ``trainer.eval_every`` asks for, if it does."""
    if cfg.trainer.eval_every <= 0:
        if cfg.metrics.best is not None:
            raise ConfigError(
                f"metrics.best={cfg.metrics.best} picks the best checkpoint among evaluations, and "
                f"trainer.eval_every=0 runs none: set trainer.eval_every to a number of steps."
            )
        return None
    return Evaluator(cfg.metrics, cfg, held_out, recipe, cfg.seed)


def typed_keys(hydra_cfg: DictConfig) -> set[str]:
    """The config keys that this command line sets (``trainer.max_steps=3`` -> ``trainer.max_steps``)."""
    return {override.split("=", 1)[0].lstrip("+~") for override in hydra_cfg.overrides.task}


def apply_typed_limits(trainer_cfg: DictConfig, typed: set[str]) -> None:
    """A training length the user typed replaces the other kind that a config file brought.

    ``gantrain model=cyclegan trainer.max_steps=3`` trains 3 steps, not the model config's 200
    epochs; with both limits typed (or both from configs) the run stops at whichever comes first.
    """
    steps, epochs = (key in typed for key in LIMITS)
    if steps and not epochs:
        trainer_cfg.max_epochs = None
    elif epochs and not steps:
        trainer_cfg.max_steps = None
    if trainer_cfg.max_steps is None and trainer_cfg.max_epochs is None:
        raise ConfigError(
            "The run has no length: set trainer.max_steps or trainer.max_epochs (both null now)."
        )


def tuning_changes(hydra_cfg: DictConfig) -> dict[str, tuple[Any, Any]]:
    """What the applied ``configs/tuning/`` file changes from the model's and data's own settings:
    key -> (without the tuning, the tuning's value), composed again without it (``~tuning``)."""
    tuning = hydra_cfg.runtime.choices.get("tuning")
    tuning_file = Path(__file__).parent / "configs" / "tuning" / f"{tuning}.yaml"
    if tuning is None or not tuning_file.is_file():  # the optional group names a file for every pair
        return {}
    groups = ("model", "dataset", "optimizer", "device")
    untuned = compose("train", overrides=[f"{g}={hydra_cfg.runtime.choices[g]}" for g in groups] + ["~tuning"])
    written = OmegaConf.load(tuning_file)
    keys = [key for key in flat_keys(OmegaConf.to_container(written)) if not key.startswith("defaults")]
    changes = {key: (OmegaConf.select(untuned, key), OmegaConf.select(written, key)) for key in keys}
    return {key: (old, new) for key, (old, new) in changes.items() if old != new}


def flat_keys(node: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in node.items():
        keys += flat_keys(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]
    return keys


def record_tuning(hydra_cfg: DictConfig) -> None:
    """Name the tuning file and its changes in the start-up log and in the run's ``.hydra/tuning.yaml``."""
    changes = tuning_changes(hydra_cfg)
    if not changes:
        return
    name = f"configs/tuning/{hydra_cfg.runtime.choices.tuning}.yaml"
    listed = "; ".join(f"{key} {old} -> {new}" for key, (old, new) in changes.items())
    log.info("Tuning %s applies (~tuning drops it): %s", name, listed)
    record = Path(hydra_cfg.runtime.output_dir) / hydra_cfg.output_subdir / "tuning.yaml"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(OmegaConf.to_yaml({"file": name, "changes": {k: {"paper": o, "tuned": n}
                                                                   for k, (o, n) in changes.items()}}))


@report_user_errors
def train(cfg: DictConfig) -> float | None:
    """Train; returns the best value of ``metrics.best`` for sweepers (Optuna minimises or maximises it).

    A user error is also written to the run's ``train.log``, so that a run folder never lies empty.
    """
    try:
        return train_run(cfg)
    except GantrainError as error:
        log.error("%s", error)
        raise


def train_run(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    if distributed.is_main_process() and distributed.active():
        distributed.share_run_directory(hydra_cfg.runtime.output_dir)  # the other ranks wait for it in main()
    choices = {
        group: choice
        for group, choice in hydra_cfg.runtime.choices.items()
        if not group.startswith("hydra") and "/" not in group
    }
    resume_state = None
    if cfg.resume:
        resume_state = load_checkpoint(cfg.resume)
        cfg = config_for_resume(cfg, resume_state, list(hydra_cfg.overrides.task))
        choices = resume_state["choices"]
    elif distributed.is_main_process():
        record_tuning(hydra_cfg)
    apply_typed_limits(cfg.trainer, typed_keys(hydra_cfg))

    cfg.model = checked_model(cfg.model)  # a misspelt or mistyped model setting stops here, before any work
    seed_everything(cfg.seed)
    # the checks that need the data read items one at a time: a mistake shows before the images are kept in memory
    dataset = build_dataset(cfg, in_memory=False)
    attach_labels(cfg, dataset, choices)
    recipe = build_recipe(cfg)
    if not recipe.accepts(dataset):
        raise pairing_error(choices, recipe)
    if cfg.dataset.in_memory is not False:
        dataset = build_dataset(cfg)
    if cfg.init_from and not resume_state:
        start_from(recipe, cfg.init_from)
    if distributed.world_size() > 1:
        # the same weights on every process (built from one seed; DDP also broadcasts rank 0's), other noise
        seed_everything(distributed.process_seed(cfg.seed))
    trainer = Trainer(
        cfg.trainer,
        cfg.device,
        Path(hydra_cfg.runtime.output_dir),
        cfg.seed,
        run_record={"config": OmegaConf.to_yaml(cfg, resolve=True), "choices": choices},
    )
    visual_dataset = held_out_dataset(cfg)
    result = trainer.fit(
        recipe,
        recipe.training_data(dataset),
        resume_state,
        visual_dataset=recipe.training_data(visual_dataset, seed=cfg.seed),
        evaluate=evaluator_for(cfg, recipe, visual_dataset),
        best_metric=cfg.metrics.best,
    )
    if result.interrupted_by is not None:
        raise SystemExit(128 + result.interrupted_by)
    return None if result.best is None else result.best["value"]


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def compose_and_train(cfg: DictConfig) -> float | None:
    return train(cfg)


def main() -> float | None:
    """``gantrain``; under torchrun, rank 0 picks the run directory and the other ranks follow it.

    Hydra resolves ``${now:...}`` in each process, so the other ranks wait, before Hydra
    composes anything, for the directory of rank 0 and run in it.
    """
    if answered_version():
        return None
    if distributed.launched_by_torchrun():
        flags = set(sys.argv[1:])
        if flags & INFO_FLAGS:  # rank 0 alone prints the config or the help, without a process group
            if not distributed.is_main_process_by_environment():
                return None
        elif {"-m", "--multirun"} & flags:
            sys.exit(
                "gantrain: error: under torchrun gantrain trains one run: sweep with gantrain -m outside "
                "torchrun (hydra/launcher=local_gpus or slurm run the jobs in parallel)."
            )
        else:
            distributed.join_process_group()
            if not distributed.is_main_process():
                sys.argv += distributed.follower_overrides(distributed.share_run_directory(None))
    sys.argv[1:] = [current_setting_name(argument) for argument in sys.argv[1:]]
    sys.argv[1:] = report_user_errors(with_resumed_choices)(sys.argv[1:])
    report_user_errors(check_sweep_plugins)(sys.argv[1:])
    try:
        return compose_and_train()
    finally:
        distributed.leave_process_group()


SWEEP_PLUGINS = {  # what a command line asks Hydra for -> (the plugin's module, the extra that brings it)
    "+hparams_search": ("hydra_plugins.hydra_optuna_sweeper", "sweep"),
    "hydra/sweeper=optuna": ("hydra_plugins.hydra_optuna_sweeper", "sweep"),
    "hydra/launcher=joblib": ("hydra_plugins.hydra_joblib_launcher", "sweep"),
    "hydra/launcher=local_gpus": ("hydra_plugins.hydra_joblib_launcher", "sweep"),
    "hydra/launcher=slurm": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    "hydra/launcher=submitit_local": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    "hydra/launcher=submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
}


def check_sweep_plugins(arguments: list[str]) -> None:
    """The Hydra plugin that a sweep option needs is installed, or one line names its extra (Hydra itself
    would only say that it cannot find the config)."""
    for argument in arguments:
        for asked, (module, extra) in SWEEP_PLUGINS.items():
            if argument == asked or argument.startswith(f"{asked}="):
                require_extra(module, extra, argument)


def with_resumed_choices(arguments: list[str]) -> list[str]:
    """``resume=<run>`` composes the run's config groups where the command line names none.

    Hydra would otherwise compose the default model, and a setting of the run's own model
    (``model.n_epochs_decay`` of a CycleGAN run) would be refused as unknown.
    """
    resume = next((argument.partition("=")[2] for argument in arguments if argument.startswith("resume=")), None)
    if not resume:
        return arguments
    named = {argument.partition("=")[0].lstrip("+~") for argument in arguments}
    choices = load_checkpoint(resume, mmap=True)["choices"]  # the tensors are read once, when training starts
    return arguments + [f"{group}={choice}" for group, choice in choices.items() if choice and group not in named]


def current_setting_name(argument: str) -> str:
    """``model.gp_weight=5`` as ``model.lambda_gp=5``, with a warning: renamed settings keep working for a release."""
    key, equals, value = argument.partition("=")
    prefix = key[: len(key) - len(key.lstrip("+~"))]
    group, _, name = key.lstrip("+~").partition(".")
    if not equals or group != "model" or name not in RENAMED_MODEL_KEYS:
        return argument
    print(
        f"gantrain: warning: model.{name} is now called model.{RENAMED_MODEL_KEYS[name]}; the old name will stop "
        f"working in the next release.",
        file=sys.stderr,
    )
    return f"{prefix}model.{RENAMED_MODEL_KEYS[name]}={value}"


if __name__ == "__main__":
    main()
