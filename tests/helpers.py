"""What several test files share: building recipes from their YAML, running the real command line,
reading back what a run wrote.  Fixtures live in ``conftest.py``."""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import subprocess
import sys
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import gantrain
from gantrain.build import build, checked_model
from gantrain.checkpoint import load_checkpoint
from gantrain.errors import DatasetError
from gantrain.recipes.base import OptimizerFactory, Recipe

CONFIGS = Path(gantrain.__file__).parent / "configs"


def model_settings(name: str) -> dict[str, Any]:
    """The ``model`` section of ``configs/model/<name>.yaml``: the family's defaults and ``_target_``."""
    return OmegaConf.to_container(OmegaConf.load(CONFIGS / "model" / f"{name}.yaml").model)


def build_model(name: str, image_shape: tuple[int, ...], make_optimizer: OptimizerFactory, **overrides: Any) -> Recipe:
    """The recipe of ``model=<name>`` with its YAML's settings and ``overrides``, as ``gantrain`` builds it."""
    settings = checked_model(OmegaConf.create(model_settings(name) | overrides))
    return build(settings, "object", image_shape=image_shape, make_optimizer=make_optimizer)


# Small networks and batches: every model trains through the real CLI in seconds.
TINY = [
    "device=cpu",
    "trainer.batch_size=8",
    "trainer.log_every=2",
    "trainer.sample_every=4",
    "trainer.checkpoint_every=4",
    "trainer.num_samples=16",
    "dataset.num_samples=256",
]
# DCGAN keeps its shapes tuning (the default run); the others drop theirs (~tuning), as the tests
# check mechanics with the paper's settings (no weight average, no in-run evaluation)
TINY_MODEL = {
    "gan": ["~tuning", "model.g_hidden=[64,64]", "model.d_hidden=[64,32]"],
    "dcgan": ["model.ngf=8", "model.ndf=8"],
    "wgan": ["~tuning", "model.ngf=8", "model.ndf=8", "model.n_critic=2", "model.long_critic_iterations=0"],
    "wgan_gp": ["~tuning", "model.ngf=8", "model.ndf=8", "model.n_critic=2"],
    "sngan": ["~tuning", "model.ngf=8", "model.ndf=8", "model.n_critic=2"],
}


def tiny(model: str, *extra: str) -> list[str]:
    return [f"model={model}", *TINY, *TINY_MODEL[model], *extra]


def run_cli(*args: str, cwd: Path, module: str = "gantrain", check: bool = True, env: dict[str, str] | None = None,
            **kwargs) -> subprocess.CompletedProcess:
    """``python -m <module> args`` in ``cwd``, as a user would type it: exit status, stdout and stderr.

    Run in this process unless the test sets the environment or passes ``subprocess.run``
    arguments: starting Python, torch and Hydra anew costs seconds a command, most of the
    suite's time.  A test that needs a process of its own (signals, environment, a GPU
    hidden) gets one.
    """
    if env is None and not kwargs and module.partition(".")[0] == "gantrain":
        result = run_in_process(module, args, cwd)
    else:
        env = {k: v for k, v in (os.environ if env is None else env).items() if k != "HYDRA_FULL_ERROR"}
        result = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True,
                                text=True, check=False, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def run_in_process(module: str, args: tuple[str, ...], cwd: Path) -> subprocess.CompletedProcess:
    """What ``python -m <module> args`` would print and return, from the module's ``main`` in this process.

    Python's own endings are reproduced: ``sys.exit(message)`` prints the message and
    returns 1, an uncaught exception prints its traceback and returns 1.  Warnings are
    printed to stderr as a fresh process would (pytest would otherwise collect them).
    """
    entry = importlib.import_module("gantrain.cli" if module == "gantrain" else module).main
    stdout, stderr = io.StringIO(), io.StringIO()
    argv, sys.argv = sys.argv, [module, *args]
    hydra_full_error = os.environ.pop("HYDRA_FULL_ERROR", None)
    root_handlers = list(logging.root.handlers)
    try:
        with (contextlib.chdir(cwd), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr),
              warnings.catch_warnings()):
            warnings.simplefilter("default")
            warnings.showwarning = print_warning
            try:
                entry()
                returncode = 0
            except SystemExit as ended:
                if isinstance(ended.code, str):
                    print(ended.code, file=sys.stderr)
                returncode = ended.code if isinstance(ended.code, int) else int(ended.code is not None)
            except Exception:  # noqa: BLE001  (a process would print it and exit 1)
                traceback.print_exc()
                returncode = 1
    finally:
        sys.argv = argv
        if hydra_full_error is not None:
            os.environ["HYDRA_FULL_ERROR"] = hydra_full_error
        for handler in set(logging.root.handlers) - set(root_handlers):  # the run's log file and console
            logging.root.removeHandler(handler)
            handler.close()
    return subprocess.CompletedProcess([module, *args], returncode, stdout.getvalue(), stderr.getvalue())


def print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def read_events(run_dir: Path) -> tuple[dict[str, dict[int, float]], dict[str, list[int]]]:
    """All scalars (tag -> step -> value) and image tags (tag -> steps) of a run directory.

    Read as TensorBoard reads it: every event file in order, with the steps a resumed
    run purged dropped.
    """
    assert list(run_dir.glob("events.out.tfevents.*")), f"no TensorBoard event files in {run_dir}"
    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0}).Reload()
    scalars = {tag: {e.step: e.value for e in accumulator.Scalars(tag)} for tag in accumulator.Tags()["scalars"]}
    images = {tag: [e.step for e in accumulator.Images(tag)] for tag in accumulator.Tags()["images"]}
    return scalars, images


def expected_error(call, *fragments: str) -> str:
    """``call`` raises a one-paragraph DatasetError that contains every fragment; its message."""
    with pytest.raises(DatasetError) as raised:
        call()
    message = str(raised.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


MULTIDOMAIN_TINY = ["device=cpu", "trainer.batch_size=4", "trainer.log_every=1", "trainer.sample_every=4",
        "trainer.checkpoint_every=100", "trainer.num_samples=3"]
STARGAN = ["model=stargan", "model.ngf=8", "model.ndf=8", "model.n_blocks=1", "model.n_layers_d=3",
           "model.n_critic=2", *MULTIDOMAIN_TINY]
STARGAN_V2 = ["model=stargan_v2", "model.base_width=8", "model.max_width=16", "model.mapping_width=16",
              "model.style_dim=8", "model.latent_dim=4", *MULTIDOMAIN_TINY]
MULTIDOMAIN_SHAPES = ["dataset.num_samples=32"]
TRANSLATION_TINY = ["device=cpu", "model.ngf=8", "model.ndf=8", "trainer.log_every=1", "trainer.sample_every=4",
        "trainer.checkpoint_every=100", "trainer.num_samples=4", "trainer.max_epochs=null"]
CYCLEGAN = ["model=cyclegan", "model.n_blocks=1", *TRANSLATION_TINY]
PIX2PIX = ["model=pix2pix", "model.generator=unet_32", *TRANSLATION_TINY]


def write_images(folder: Path, count: int, size: tuple[int, int], colour: int) -> None:
    folder.mkdir(parents=True)
    for index in range(count):
        Image.new("RGB", size, (colour, index * 40 % 255, 90)).save(folder / f"{index:03d}.png")


# every model, tiny, on the embedded data (tests/test_cuda.py runs the same on a GPU)
ALL_MODELS = {
    **{model: tiny(model) for model in ("gan", "dcgan", "wgan", "wgan_gp", "sngan")},
    "cyclegan": [*CYCLEGAN, "dataset=shapes_unpaired", "dataset.num_samples=64"],
    "pix2pix": [*PIX2PIX, "dataset=shapes_paired", "dataset.num_samples=64"],
    "stargan": [*STARGAN, "dataset=shapes_attributes", *MULTIDOMAIN_SHAPES],
    "stargan_v2": [*STARGAN_V2, "dataset=shapes_domains", *MULTIDOMAIN_SHAPES],
}
TRAINING = {
    "gan": tiny("gan"),
    "dcgan": tiny("dcgan", "model.ema_decay=0.999"),  # exports the averaged generator
    "wgan": tiny("wgan"),
    "wgan_gp": tiny("wgan_gp"),
    "cyclegan": [*CYCLEGAN, "dataset=shapes_unpaired", "dataset.num_samples=16"],
    "pix2pix": [*PIX2PIX, "dataset=shapes_paired", "dataset.num_samples=16"],
    "stargan": [*STARGAN, "dataset=shapes_attributes", *MULTIDOMAIN_SHAPES],
    "stargan_v2": [*STARGAN_V2, "dataset=shapes_domains", *MULTIDOMAIN_SHAPES],
}


def run_entry_point(main: Callable[[], Any], *args: str) -> None:
    """``main`` as its console script runs it with ``args``, but in this process."""
    argv, sys.argv = sys.argv, [main.__module__, *args]
    try:
        main()
    finally:
        sys.argv = argv


def final_state(run_dir: Path) -> dict:
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")


def assert_equal_states(a, b, where: str = "") -> None:
    """Equal nested dicts / lists of tensors and plain values."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_equal_states(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


def assert_same_training(straight: Path, resumed: Path) -> None:
    a, b = final_state(straight), final_state(resumed)
    assert a["step"] == b["step"]
    assert_equal_states(a["recipe"], b["recipe"])
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    assert_equal_states(a["optimizers"], b["optimizers"])
    assert_equal_states(a["schedulers"], b["schedulers"])
    losses_a, _ = read_events(straight)
    losses_b, _ = read_events(resumed)
    for tag in ("loss/generator", "loss/discriminator"):
        # every step the straight run logged, with the same value (the stopped run may add its last step)
        assert losses_a[tag] == {step: losses_b[tag][step] for step in losses_a[tag]}, tag
    assert set(range(2, a["step"] + 1, 2)) <= set(losses_b["loss/discriminator"])  # none lost or purged


def recompilations(result) -> int:
    return (result.stdout + result.stderr).count("Recompiling function")


CELEBA_ATTRIBUTES = [  # line 2 of the official list_attr_celeba.txt
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
]
DOMAIN_COUNTS = {"train": {"cat": 3, "dog": 1, "wild": 2}, "val": {"cat": 1, "dog": 2, "wild": 1}}


def write_attribute_file(path: Path, count: int, seed: int = 0) -> np.ndarray:
    """A list_attr_celeba.txt for 000001.jpg ... with random +-1 values, spaced like the official file."""
    values = np.where(np.random.default_rng(seed).random((count, len(CELEBA_ATTRIBUTES))) < 0.4, 1, -1)
    rows = [
        f"{number + 1:06d}.jpg " + " ".join(f"{value:2d}" for value in row)
        for number, row in enumerate(values)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([str(count), " ".join(CELEBA_ATTRIBUTES), *rows]) + "\n")
    return values


def grey_level(domain: int, number: int) -> int:
    return 40 * domain + 10 * number + 20
