"""gantrain-export: every family's networks as ONNX and TorchScript files that compute what PyTorch computes.

Tiny checkpoints are trained once per session through the real ``gantrain`` entry point, run in
this process (an interpreter start-up per model would cost more than the training), and shared
with test_api.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from helpers import run_entry_point

import gantrain.cli
import gantrain.export
from gantrain.trained import load_trained

TOLERANCE = 1e-4  # fp32, largest absolute difference from eager PyTorch
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
# export target -> (gantrain-export arguments, the eager network it must match)
TARGETS: dict[str, tuple[list[str], Callable[[Any], torch.nn.Module]]] = {
    "gan": ([], lambda recipe: recipe.generator),
    "dcgan": ([], lambda recipe: recipe.generator_ema),
    "wgan": ([], lambda recipe: recipe.generator),
    "wgan_gp": ([], lambda recipe: recipe.generator),
    "cyclegan": ([], lambda recipe: recipe.generator_ab),
    "cyclegan-BtoA": (["direction=BtoA"], lambda recipe: recipe.generator_ba),
    "pix2pix": ([], lambda recipe: recipe.generator.eval()),  # dropout off, unlike the recipe's eval()
    "stargan": ([], lambda recipe: recipe.translator),
    "stargan_v2": ([], lambda recipe: recipe.generator_ema),
    "stargan_v2-mapping": (["part=mapping"], lambda recipe: recipe.mapping_ema),
    "stargan_v2-style_encoder": (["part=style_encoder"], lambda recipe: recipe.style_encoder_ema),
}
# ONNX export takes seconds a network: WGAN and WGAN-GP have DCGAN's generator and code path, and
# CycleGAN's BtoA generator is AtoB's twin, so TorchScript alone (fast) covers those three
ONNX_TARGETS = [target for target in TARGETS if target not in ("wgan", "wgan_gp", "cyclegan-BtoA")]
# a batch of 3 at the training size (32), then one image of another size where the sides are dynamic
SIZES = [{"batch": 3, "height": 32, "width": 32}, {"batch": 1, "height": 24, "width": 40}]


def export(run: Path, output: Path, *args: str) -> dict[str, Any]:
    """Run gantrain-export; returns the description stored in the file."""
    run_entry_point(gantrain.export.main, f"checkpoint={run}", f"output={output}", *args)
    if output.suffix == ".onnx":
        (prop,) = onnx.load(output).metadata_props
        return json.loads(prop.value)
    files = {"gantrain.json": ""}
    torch.jit.load(output, _extra_files=files)
    return json.loads(files["gantrain.json"])


def input_cases(description: dict[str, Any]) -> list[dict[str, torch.Tensor]]:
    """Inputs of each of the SIZES, as the file's description of its inputs asks for them."""
    generator = torch.Generator().manual_seed(0)
    cases = []
    for sizes in SIZES:
        case = {}
        for name, shape in description["inputs"].items():
            dims = [sizes[dim] if isinstance(dim, str) else dim for dim in shape]
            if name == "domain":
                case[name] = torch.randint(len(description["labels"]), dims, generator=generator)
            elif name == "condition":
                case[name] = torch.randint(0, 2, dims, generator=generator).float()
            elif name == "image":
                case[name] = torch.rand(dims, generator=generator) * 2 - 1
            else:
                case[name] = torch.randn(dims, generator=generator)
        cases.append(case)
    return cases


def eager(run: Path, target: str, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    network = TARGETS[target][1](load_trained(run, torch.device("cpu")).recipe)
    with torch.no_grad():
        return network(*inputs.values())


@pytest.mark.parametrize("target", ONNX_TARGETS)
def test_onnx_file_computes_what_pytorch_computes_at_other_sizes(target, trained_run, tmp_path):
    run = trained_run(target.split("-")[0])
    output = tmp_path / "model.onnx"
    description = export(run, output, *TARGETS[target][0])
    session = onnxruntime.InferenceSession(output, providers=["CPUExecutionProvider"])
    assert [node.name for node in session.get_inputs()] == list(description["inputs"])
    assert [node.shape for node in session.get_inputs()] == list(description["inputs"].values())
    assert session.get_inputs()[0].shape[0] == "batch"
    for inputs in input_cases(description):
        (result,) = session.run(None, {name: tensor.numpy() for name, tensor in inputs.items()})
        expected = eager(run, target, inputs)
        assert result.shape == expected.shape
        assert np.abs(result - expected.numpy()).max() <= TOLERANCE
    assert [path.name for path in tmp_path.iterdir()] == ["model.onnx"]  # no temporary file left


FRESH_PROCESS = """
import sys, torch
cases = torch.load(sys.argv[1])
with torch.no_grad():
    outputs = {key: [torch.jit.load(path)(*inputs) for inputs in runs] for key, (path, runs) in cases.items()}
assert not any(name.startswith("gantrain") for name in sys.modules), "a TorchScript file needed gantrain"
torch.save(outputs, sys.argv[2])
"""


@pytest.fixture(scope="module")
def torchscript_results(trained_run, tmp_path_factory) -> dict[str, tuple[list[torch.Tensor], list[torch.Tensor]]]:
    """Every target exported as TorchScript and run in a fresh Python process: (eager outputs, file's outputs)."""
    folder = tmp_path_factory.mktemp("torchscript")
    cases, expected = {}, {}
    for target, (args, _) in TARGETS.items():
        run = trained_run(target.split("-")[0])
        path = folder / f"{target}.pt"
        runs = input_cases(export(run, path, "format=torchscript", *args))
        cases[target] = (str(path), [list(inputs.values()) for inputs in runs])
        expected[target] = [eager(run, target, inputs) for inputs in runs]
    torch.save(cases, folder / "cases.pt")
    subprocess.run([sys.executable, "-c", FRESH_PROCESS, folder / "cases.pt", folder / "outputs.pt"], check=True,
                   cwd=folder)
    outputs = torch.load(folder / "outputs.pt")
    return {target: (expected[target], outputs[target]) for target in TARGETS}


@pytest.mark.parametrize("target", TARGETS)
def test_torchscript_file_computes_in_a_fresh_process_what_pytorch_computes(target, torchscript_results):
    expected, results = torchscript_results[target]
    for want, got in zip(expected, results, strict=True):
        assert got.shape == want.shape
        assert (got - want).abs().max().item() <= TOLERANCE


def test_noise_models_export_the_averaged_generator(trained_run, tmp_path):
    run = trained_run("dcgan")
    export(run, tmp_path / "dcgan.pt", "format=torchscript")
    recipe = load_trained(run, torch.device("cpu")).recipe
    noise = torch.randn(4, recipe.nz)
    with torch.no_grad():
        exported = torch.jit.load(tmp_path / "dcgan.pt")(noise)
        from_average = (exported - recipe.generator_ema(noise)).abs().max()
        from_trained = (exported - recipe.generator(noise)).abs().max()
    assert from_average < from_trained / 100


@pytest.mark.parametrize(
    ("family", "args", "message"),
    [
        ("dcgan", ["part=mapping"], "part=mapping is not a network of the dcgan model; it exports part=generator"),
        ("dcgan", ["part=discriminator"], "part=discriminator is not a network of the dcgan model"),
        ("dcgan", ["direction=BtoA"], "direction= is for models that translate between two domains"),
        ("pix2pix", ["direction=BtoA"], "trained AtoB and translates only that way"),
        (None, [], "No checkpoint at"),
    ],
)
def test_user_errors_are_one_paragraph_and_write_nothing(family, args, message, trained_run, tmp_path, capsys,
                                                        monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    checkpoint = trained_run(family) if family else tmp_path / "missing"
    with pytest.raises(SystemExit) as stopped:
        run_entry_point(gantrain.export.main, f"checkpoint={checkpoint}", f"output={tmp_path / 'out.onnx'}", *args)
    error = capsys.readouterr().err
    assert stopped.value.code == 2 and message in error and error.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["format=tflite", "output=x"], "Invalid value 'tflite', expected one of [onnx, torchscript]"),
        (["formt=onnx", "output=x"], "Key 'formt' not in 'ExportConfig'"),
        ([], "gantrain-export needs output="),
    ],
)
def test_unknown_options_are_refused_before_any_work(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit):
        run_entry_point(gantrain.export.main, f"checkpoint={tmp_path / 'missing'}", *args)
    assert message in capsys.readouterr().err
