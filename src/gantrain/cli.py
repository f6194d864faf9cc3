"""``gantrain``: compose the config with Hydra, build dataset and recipe, run the trainer."""

from __future__ import annotations

import random
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import Dataset

from gantrain import distributed
from gantrain.build import (
    RENAMED_MODEL_KEYS,
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
from gantrain.errors import CheckpointError, ConfigError
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
INFO_FLAGS = {"-c", "--cfg", "-h", "--help", "--hydra-help", "-i", "--info"}  # print and exit: no training

register_configs()
OmegaConf.register_new_resolver("gantrain_run_dir", run_directory, replace=True)
OmegaConf.register_new_resolver("gantrain_record_dir", record_directory, replace=True)
OmegaConf.register_new_resolver("gantrain_swept", swept_overrides, replace=True)
# hydra/launcher=local_gpus: job n of a sweep sees GPU n mod (jobs at once)
OmegaConf.register_new_resolver("gantrain_job_gpu", lambda job, slots: str(int(job) % int(slots)), replace=True)


def config_for_resume(cfg: DictConfig, state: dict[str, Any], overrides: list[str]) -> DictConfig:
    """The checkpoint's config, with the values the user set on this command line.

    ``trainer.*``, ``device.*`` and ``metrics.*`` may change (``trainer.max_steps=4000``
    trains longer).  Other changes (the networks, the data, the optimizer, the seed) would
    not continue the same run: they are refused, listed, unless ``resume_allow_changes=true``.
    Another config group option (``model=wgan`` for a DCGAN run) is always refused.
    """
    stored = OmegaConf.create(state["config"])
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
        if not key.startswith(RESUMABLE_CHANGES) and new != old:
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


@report_user_errors
def train(cfg: DictConfig) -> float | None:
    """Train; returns the best value of ``metrics.best`` for sweepers (Optuna minimises or maximises it)."""
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

    cfg.model = checked_model(cfg.model)  # a misspelt or mistyped model setting stops here, before any work
    seed_everything(cfg.seed)
    dataset = build_dataset(cfg)
    attach_labels(cfg, dataset, choices)
    recipe = build_recipe(cfg)
    if not recipe.accepts(dataset):
        raise pairing_error(choices, recipe)
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
    try:
        return compose_and_train()
    finally:
        distributed.leave_process_group()


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
