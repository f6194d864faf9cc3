"""The config tree: every option composes, each default lives in one place, mistakes stop at start-up."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest
import torch
from helpers import CONFIGS, build_model, model_settings
from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.utils import get_object
from omegaconf import OmegaConf

import gantrain
import gantrain.cli
from gantrain.build import RENAMED_MODEL_KEYS, build_recipe, checked_model
from gantrain.checkpoint import save_checkpoint
from gantrain.cli import current_setting_name
from gantrain.config import INJECTED, model_schema
from gantrain.errors import ConfigError
from gantrain.trained import load_trained

MODELS = sorted(path.stem for path in (CONFIGS / "model").glob("*.yaml"))
SOURCE = Path(gantrain.__file__).parent


def composed(*overrides: str):
    with initialize_config_module("gantrain.configs", version_base="1.3"):
        return compose("train", overrides=list(overrides))


def test_model_configs_bring_their_paper_optimizer_and_batch_size():
    wgan = composed("model=wgan", "~tuning")  # the paper's settings (the shapes tuning raises the rate to 1e-3)
    assert wgan.optimizer._target_ == "torch.optim.RMSprop" and wgan.optimizer.lr == 5e-5
    wgan_gp = composed("model=wgan_gp", "~tuning")
    assert wgan_gp.optimizer.lr == 1e-4 and list(wgan_gp.optimizer.betas) == [0.0, 0.9]
    dcgan = composed("~tuning")
    assert dcgan.optimizer.lr == 2e-4 and list(dcgan.optimizer.betas) == [0.5, 0.999]
    assert dcgan.trainer.batch_size == 64
    overridden = composed("model=wgan", "optimizer=adam", "optimizer.lr=1e-3", "trainer.batch_size=16")
    assert overridden.optimizer._target_ == "torch.optim.Adam" and overridden.optimizer.lr == 1e-3
    assert overridden.trainer.batch_size == 16



def test_adams_epsilon_is_pytorchs_unless_set_and_reaches_both_networks():
    assert composed("model=gan", "~tuning").optimizer.eps == torch.optim.Adam([torch.zeros(1)]).defaults["eps"]
    recipe = build_recipe(composed("model=gan", "dataset.image_size=16", "optimizer.eps=1e-5"))
    assert {group["eps"] for optimizer in recipe.optimizers().values() for group in optimizer.param_groups} == {1e-5}


def test_the_mlp_gans_weight_decay_is_the_shapes_tunings_and_reaches_both_networks():
    """The paper's settings have none; the shapes tuning's L2 penalty is Adam's own, on G and D alike."""
    assert composed("model=gan", "~tuning").optimizer.weight_decay == 0
    recipe = build_recipe(composed("model=gan", "dataset.image_size=16"))
    optimizers = recipe.optimizers().values()
    assert all(type(optimizer) is torch.optim.Adam for optimizer in optimizers)
    assert {group["weight_decay"] for optimizer in optimizers for group in optimizer.param_groups} == {1e-3}
    assert not any(optimizer.defaults.get("decoupled_weight_decay") for optimizer in optimizers)  # not AdamW


def option_files(group: str) -> list[Path]:
    return sorted((CONFIGS / group).glob("*.yaml"))


@pytest.mark.parametrize("model", MODELS)
def test_every_model_yaml_names_its_target_and_sets_every_setting_of_it(model):
    settings = model_settings(model)
    assert settings["_target_"].startswith("gantrain.recipes.")
    constructor = get_object(settings["_target_"]).__init__
    keyword_only = [
        name for name, parameter in inspect.signature(constructor).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    structured = {name for name, f in model_schema(settings["_target_"]).__dataclass_fields__.items()
                  if f.default_factory is not dataclasses.MISSING}  # filled in at start-up (labels)
    assert set(settings) - {"_target_"} == set(keyword_only) - structured
    checked_model(OmegaConf.create(settings))  # types fit


@pytest.mark.parametrize("model", MODELS)
def test_a_model_default_is_written_only_in_its_yaml(model):
    """Not in the recipe's constructor, not in a schema: the YAML is the one place."""
    target = model_settings(model)["_target_"]
    parameters = inspect.signature(get_object(target).__init__).parameters
    with_defaults = [name for name, p in parameters.items() if p.default is not inspect.Parameter.empty]
    assert with_defaults == [], f"{target} has constructor defaults for {with_defaults}"
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for name, p in parameters.items()
               if name not in ("self", *INJECTED))
    schema = OmegaConf.structured(model_schema(target))
    assert all(OmegaConf.is_missing(schema, name) for name in schema if name != "labels"), OmegaConf.to_yaml(schema)


def schema_of(group: str, option: str):
    """The structured schema at the root of an option's defaults chain (options may extend other options)."""
    written = OmegaConf.load(CONFIGS / group / f"{option}.yaml")
    parent = next(entry for entry in written.get("defaults", []) if isinstance(entry, str))
    if (CONFIGS / group / f"{parent}.yaml").is_file():
        return schema_of(group, parent)
    return OmegaConf.structured(ConfigStore.instance().load(f"{group}/{parent}.yaml").node)


@pytest.mark.parametrize("group", ["dataset", "optimizer", "device"])
def test_no_option_file_repeats_a_default_of_its_schema(group):
    """A value written both in a schema and in a YAML that uses it could drift apart: write it once."""
    repeated = []
    for path in option_files(group):
        schema = schema_of(group, path.stem)
        for key, value in OmegaConf.load(path).items_ex(resolve=False):
            if key != "defaults" and key in schema and not OmegaConf.is_missing(schema, key) and schema[key] == value:
                repeated.append(f"{path.name}: {key}")
        missing = OmegaConf.missing_keys(composed(f"{group}={path.stem}")[group])
        assert missing == set(), f"{path.name} leaves {missing} unset"
    assert repeated == []


@pytest.mark.parametrize("path", option_files("dataset"), ids=lambda p: p.stem)
def test_a_dataset_class_default_agrees_with_its_schema(path):
    """Dataset classes keep keyword defaults for use from Python; where the schema has a default, they agree.

    One exception, by design: ``in_memory`` is ``auto`` for runs (the schema) and off for a dataset built in
    Python, where a default that renders or decodes every image at construction would surprise.
    """
    schema = schema_of("dataset", path.stem)
    parameters = inspect.signature(get_object(composed(f"dataset={path.stem}").dataset._target_)).parameters
    disagree = {
        name: (parameter.default, schema[name])
        for name, parameter in parameters.items()
        if name in schema and not OmegaConf.is_missing(schema, name)
        and parameter.default is not inspect.Parameter.empty and parameter.default != schema[name]
    }
    assert disagree == ({"in_memory": (False, "auto")} if "in_memory" in parameters else {})


def test_a_wrong_type_or_unknown_model_setting_is_one_clear_paragraph():
    settings = OmegaConf.create(model_settings("cyclegan") | {"lambda_a": "abc"})
    with pytest.raises(ConfigError) as raised:
        checked_model(settings)
    assert "model.lambda_a=abc" in str(raised.value) and "\n" not in str(raised.value)
    with pytest.raises(ConfigError, match="model.lambda_x is not a setting of .*lambda_a"):
        checked_model(OmegaConf.create(model_settings("cyclegan") | {"lambda_x": 1.0}))
    incomplete = model_settings("dcgan")
    del incomplete["ngf"]
    with pytest.raises(ConfigError, match="sets no value for model.ngf"):
        checked_model(OmegaConf.create(incomplete))


def test_renamed_settings_keep_working_for_a_release_on_the_command_line(capsys):
    assert RENAMED_MODEL_KEYS == {"gp_weight": "lambda_gp", "d_layers": "n_layers_d"}
    assert current_setting_name("model.gp_weight=5") == "model.lambda_gp=5"
    assert current_setting_name("+model.d_layers=4") == "+model.n_layers_d=4"
    assert "model.gp_weight is now called model.lambda_gp" in capsys.readouterr().err
    assert current_setting_name("trainer.max_steps=5") == "trainer.max_steps=5"
    assert current_setting_name("model.lambda_gp=5") == "model.lambda_gp=5"


def test_a_checkpoint_written_before_the_renames_still_loads(tmp_path):
    """Its config names the factory function and the old setting names; the weights are the same."""
    torch.manual_seed(0)
    recipe = build_model("wgan_gp", (3, 32, 32), torch.optim.Adam, ngf=8, ndf=8)
    cfg = composed("model=wgan_gp", "~tuning", "model.ngf=8", "model.ndf=8", "device=cpu")
    old = OmegaConf.to_container(cfg, resolve=True)
    old["model"]["gp_weight"] = old["model"].pop("lambda_gp")
    dcgan_cfg = OmegaConf.to_container(composed("device=cpu", "~tuning", "model.ngf=8", "model.ndf=8"), resolve=True)
    dcgan_cfg["model"]["_target_"] = "gantrain.recipes.dcgan.dcgan"  # a function then, a class now
    for config, state, model in ((old, recipe.state_dict(), "wgan_gp"), (dcgan_cfg, None, "dcgan")):
        if state is None:
            state = build_model("dcgan", (3, 32, 32), torch.optim.Adam, ngf=8, ndf=8).state_dict()
        path = tmp_path / model / "checkpoints" / "last.pt"
        save_checkpoint({"config": OmegaConf.to_yaml(OmegaConf.create(config)), "choices": {"model": model,
                         "dataset": "shapes"}, "step": 3, "recipe": state}, path)
        trained = load_trained(tmp_path / model, torch.device("cpu"))
        assert trained.step == 3
        for name, tensor in state.items():
            if isinstance(tensor, torch.Tensor):
                assert torch.equal(trained.recipe.state_dict()[name], tensor), name


def test_no_module_outside_recipes_and_nets_names_a_family():
    """The commands ask the recipe; adding a family never touches them."""
    families = {f"gantrain.recipes.{path.stem}" for path in (SOURCE / "recipes").glob("*.py")} - {
        "gantrain.recipes.base", "gantrain.recipes.__init__"
    }
    offenders = []
    for path in SOURCE.rglob("*.py"):
        if path.parent.name in ("recipes", "nets"):
            continue
        text = path.read_text()
        if "isinstance(recipe" in text or "isinstance(trained.recipe" in text:
            offenders.append(f"{path.name}: isinstance on a recipe")
        for family in families:
            if re.search(rf"^\s*(from {re.escape(family)} import|import {re.escape(family)})", text, re.MULTILINE):
                offenders.append(f"{path.name}: imports {family}")
    assert offenders == []


def test_a_stored_config_without_settings_added_since_trains_as_it_did():
    stored = model_settings("gan")
    added = {"d_dropout": 0.0, "d_maxout_pieces": 0, "d_minibatch_std": False, "g_lr": None, "d_lr": None,
             "n_steps": 0, "n_steps_decay": 0, "d_real_label": 1.0, "g_top_k": 1.0, "d_pack": 1}
    for key in added:
        del stored[key]
    checked = checked_model(OmegaConf.create(stored))
    assert {key: checked[key] for key in added} == added
    for path in (CONFIGS / "model").glob("*.yaml"):
        target = model_settings(path.stem)["_target_"]
        assert get_object(target).settings_added_later.keys() <= model_schema(target).__dataclass_fields__.keys()


@pytest.mark.parametrize("model", sorted(path.stem for path in (CONFIGS / "model").glob("*.yaml")))
def test_a_step_counted_decay_in_the_embedded_data_tuning_ends_with_the_run(model):
    """A decay that stops short of max_steps leaves the rest of the run at a rate of zero; one that runs past
    it never reaches zero: both are tuning mistakes."""
    recipe = get_object(model_settings(model)["_target_"])
    cfg = composed(f"model={model}", f"dataset={recipe.embedded_dataset}")
    if recipe.schedule_per_step and cfg.model.get("n_steps_decay"):
        assert cfg.model.n_steps + cfg.model.n_steps_decay == cfg.trainer.max_steps
