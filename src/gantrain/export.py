"""``gantrain-export``: a trained network as one ONNX or TorchScript file, to serve without gantrain.

Every family exports its generator: noise -> image for the GAN, DCGAN and WGANs (the
averaged generator where the run kept one, as ``gantrain-sample`` uses), image -> image
for CycleGAN (``direction`` picks the generator) and pix2pix, (image, condition vector)
-> image for StarGAN (the averaged generator where kept), (image, style code) -> image
for StarGAN v2.  StarGAN v2 also
exports its mapping network (latent, domain) -> style code and its style encoder
(image, domain) -> style code (``part=``); all three are the averaged copies that its
translations use.

The batch size is dynamic everywhere.  Image sides are dynamic where the generator is
fully convolutional (CycleGAN's ResNet and StarGAN's generator: multiples of 4); the
U-Net and StarGAN v2's networks take the training size, to which gantrain-translate
resizes too.  The file is written in evaluation mode, in fp32: BatchNorm uses its running
statistics and dropout is off, pix2pix's included (gantrain-translate keeps it on, the paper's
noise, but ONNX Runtime's default optimisations remove Dropout nodes whatever their mode, and a
served model should give one answer per input).
"""

from __future__ import annotations

import io
import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import hydra
import onnx
import torch
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from torch import nn
from torch.optim.swa_utils import AveragedModel

from gantrain.build import image_shape, report_user_errors
from gantrain.config import DeviceConfig, Direction, register_configs
from gantrain.device import resolve_device
from gantrain.errors import ConfigError
from gantrain.recipes.base import NoiseToImage
from gantrain.recipes.cyclegan import CycleGAN
from gantrain.recipes.pix2pix import Pix2Pix
from gantrain.recipes.stargan import StarGAN
from gantrain.recipes.stargan_v2 import StarGANv2
from gantrain.trained import Trained, load_trained

log = logging.getLogger(__name__)
# the ONNX optimizer's notes on every folded constant and removed node are not for users
for optimizer_logger in ("onnxscript", "onnx_ir"):
    logging.getLogger(optimizer_logger).setLevel(logging.WARNING)

EXAMPLE_BATCH = 2  # torch.export treats sizes 0 and 1 as constants: trace with 2 to keep the batch dynamic
METADATA_KEY = "gantrain"  # the ONNX metadata property / TorchScript extra file that describes the inputs
BATCH = {0: "batch"}  # dynamic axes by name, as they appear in the ONNX file
IMAGE_AXES = {0: "batch", 2: "height", 3: "width"}


class ExportFormat(str, Enum):
    onnx = "onnx"
    torchscript = "torchscript"


class ExportPart(str, Enum):
    generator = "generator"
    mapping = "mapping"  # StarGAN v2: (latent, domain) -> style code
    style_encoder = "style_encoder"  # StarGAN v2: (reference image, domain) -> style code


@dataclass
class ExportConfig:
    checkpoint: str = MISSING  # a checkpoint file or a run directory
    output: str = MISSING  # the file to write
    format: ExportFormat = ExportFormat.onnx
    part: ExportPart = ExportPart.generator
    # CycleGAN: which generator (AtoB when unset); pix2pix: the direction it was trained in
    direction: Direction | None = None
    device: DeviceConfig = field(default_factory=DeviceConfig)  # export.yaml picks device=cpu


register_configs()
ConfigStore.instance().store(name="export_schema", node=ExportConfig)


@dataclass
class Exportable:
    """A network with named example inputs, and which axes of its inputs and output may change size."""

    network: nn.Module
    inputs: dict[str, torch.Tensor]
    output: str
    dynamic_axes: dict[str, dict[int, str]]  # input or output name -> axis -> name of the dimension
    output_range: str = "[-1, 1]"
    size_multiple: int = 1  # dynamic image sides must be multiples of this
    # TorchScript compiles the code so that shapes stay dynamic; a network it cannot compile is
    # traced instead, which is exact when no Python control flow depends on the input.
    scriptable: bool = True
    # torch.export traces through TorchDynamo (slower) when the code takes len() of a batch, which the
    # default tracer would fix to the example's size (StarGAN v2's per-domain heads pick rows so)
    strict: bool = False
    labels: list[str] = field(default_factory=list)  # what the condition vector's or domain's indices mean
    direction: str | None = None  # CycleGAN's and pix2pix's


def averaged(network: nn.Module) -> nn.Module:
    """The network inside an exponential moving average wrapper, which exports as that network."""
    return network.module if isinstance(network, AveragedModel) else network


def images_in(trained: Trained, device: torch.device) -> torch.Tensor:
    """A batch of images at the training size, in [-1, 1] as the generators expect."""
    return torch.rand(EXAMPLE_BATCH, *image_shape(trained.config), device=device) * 2 - 1


def exportable(trained: Trained, part: ExportPart, direction: Direction | None) -> Exportable:
    """The network ``part`` of the trained model (with ``direction`` where it has two), ready to export."""
    recipe, model = trained.recipe, trained.model
    device = next(recipe.parameters()).device
    if part != ExportPart.generator and not isinstance(recipe, StarGANv2):
        raise ConfigError(
            f"part={part.value} is a network of StarGAN v2; the {model} model exports only part=generator."
        )
    if direction is not None and not isinstance(recipe, (CycleGAN, Pix2Pix)):
        raise ConfigError(f"direction= is for CycleGAN and pix2pix; the {model} model has one generator.")

    if isinstance(recipe, NoiseToImage):
        network = recipe.generator if recipe.generator_ema is None else recipe.generator_ema
        noise = recipe.noise(EXAMPLE_BATCH, device)
        return Exportable(averaged(network), {"noise": noise}, "image", {"noise": BATCH, "image": BATCH})
    if isinstance(recipe, CycleGAN):
        direction = direction or Direction.AtoB
        return Exportable(
            recipe.generator_ab if direction == Direction.AtoB else recipe.generator_ba,
            {"image": images_in(trained, device)},
            "translated",
            {"image": IMAGE_AXES, "translated": IMAGE_AXES},
            size_multiple=recipe.size_multiple,
            direction=direction.value,
        )
    if isinstance(recipe, Pix2Pix):
        if direction not in (None, recipe.direction):
            raise ConfigError(
                f"This pix2pix model was trained {recipe.direction.value} and translates only that way: "
                f"pass direction={recipe.direction.value} or leave it out."
            )
        recipe.generator.eval()  # dropout off too, which the recipe's own eval() keeps on
        return Exportable(
            recipe.generator,
            {"image": images_in(trained, device)},
            "translated",
            {"image": BATCH, "translated": BATCH},
            direction=recipe.direction.value,
        )
    if isinstance(recipe, StarGAN):
        condition = torch.eye(EXAMPLE_BATCH, recipe.labels.size, device=device)
        return Exportable(
            averaged(recipe.translator),
            {"image": images_in(trained, device), "condition": condition},
            "translated",
            {"image": IMAGE_AXES, "condition": BATCH, "translated": IMAGE_AXES},
            size_multiple=4,  # two stride-2 convolutions, undone by two transposed ones
            labels=recipe.labels.names,
        )
    if isinstance(recipe, StarGANv2):
        return stargan_v2_part(recipe, trained, part, device)
    raise ConfigError(f"gantrain-export does not know how to export the {model} model.")


def stargan_v2_part(recipe: StarGANv2, trained: Trained, part: ExportPart, device: torch.device) -> Exportable:
    """The averaged generator, mapping network or style encoder; style codes are unbounded."""
    domains = torch.arange(EXAMPLE_BATCH, device=device)
    labels = recipe.labels.names
    if part == ExportPart.mapping:
        latent = recipe.latent(EXAMPLE_BATCH, device)
        return Exportable(
            averaged(recipe.mapping_ema),
            {"latent": latent, "domain": domains},
            "style",
            {"latent": BATCH, "domain": BATCH, "style": BATCH},
            output_range="unbounded",
            strict=True,
            labels=labels,
        )
    images = images_in(trained, device)
    if part == ExportPart.style_encoder:
        return Exportable(
            averaged(recipe.style_encoder_ema),
            {"image": images, "domain": domains},
            "style",
            {"image": BATCH, "domain": BATCH, "style": BATCH},
            output_range="unbounded",
            strict=True,
            labels=labels,
        )
    with torch.no_grad():
        style = recipe.mapping_ema(recipe.latent(EXAMPLE_BATCH, device), domains)
    return Exportable(
        averaged(recipe.generator_ema),
        {"image": images, "style": style},
        "translated",
        {"image": BATCH, "style": BATCH, "translated": BATCH},
        output_range="unbounded (no tanh: clamp to [-1, 1])",
        # F.interpolate(scale_factor=2) with an int factor does not compile; the graph has no input-dependent branch
        scriptable=False,
    )


def dynamic_shapes(target: Exportable) -> tuple[dict[int, Any], ...]:
    """torch.export's description of the dynamic input axes; image sides as multiples of ``size_multiple``."""
    dims: dict[str, Any] = {}
    for axes in target.dynamic_axes.values():
        for name in axes.values():
            if name not in dims:
                dim = torch.export.Dim(name)
                dims[name] = dim if name == "batch" else target.size_multiple * dim
    return tuple(
        {axis: dims[name] for axis, name in target.dynamic_axes.get(input_name, {}).items()}
        for input_name in target.inputs
    )


def to_onnx(target: Exportable, description: dict) -> bytes:
    """Through ``torch.export`` and the ONNX exporter built on it.

    ``torch.export`` refuses to fix a dynamic axis to the example's size; ``torch.onnx.export``
    given the module itself would quietly fall back to such a fixed-size graph.
    """
    args = tuple(target.inputs.values())
    program = torch.export.export(
        target.network, args, dynamic_shapes=dynamic_shapes(target), strict=target.strict
    )
    model = torch.onnx.export(
        program, args, input_names=list(target.inputs), output_names=[target.output], dynamo=True, verbose=False
    ).model_proto
    name_dynamic_axes(model, target.dynamic_axes)
    onnx.helper.set_model_props(model, {METADATA_KEY: json.dumps(description)})
    return model.SerializeToString()


def name_dynamic_axes(model: onnx.ModelProto, dynamic_axes: dict[str, dict[int, str]]) -> None:
    """Rename the exporter's symbols (``s27``, ``4*s12``) to ``batch``, ``height`` and ``width`` throughout."""
    graph = model.graph
    renames = {}
    for value in graph.input:
        dims = value.type.tensor_type.shape.dim
        for axis, name in dynamic_axes.get(value.name, {}).items():
            renames[dims[axis].dim_param] = name
    for value in [*graph.input, *graph.output, *graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in renames:
                dim.dim_param = renames[dim.dim_param]


def to_torchscript(target: Exportable, description: dict) -> bytes:
    """The saved module, with the description as an extra file.

    The user asked for TorchScript, so torch's notice that it is deprecated is left out, and so are
    the tracer's warnings about InstanceNorm's checks of the channel count and the image size, which
    are fixed in the one traced network.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.* is deprecated", category=FutureWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        if target.scriptable:
            module = torch.jit.script(target.network)
        else:
            module = torch.jit.trace(target.network, tuple(target.inputs.values()))
        buffer = io.BytesIO()
        torch.jit.save(module, buffer, _extra_files={f"{METADATA_KEY}.json": json.dumps(description)})
    return buffer.getvalue()


def write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename it: never half a file at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def describe(trained: Trained, part: ExportPart, target: Exportable) -> dict[str, Any]:
    """What a server needs to feed the file, with dynamic axes by name: stored in it, and logged."""
    with torch.no_grad():
        output = target.network(*target.inputs.values())

    def shape(name: str, tensor: torch.Tensor) -> list[int | str]:
        return [target.dynamic_axes[name].get(axis, size) for axis, size in enumerate(tensor.shape)]

    return {
        "model": trained.model,
        "part": part.value,
        "step": trained.step,
        "inputs": {name: shape(name, tensor) for name, tensor in target.inputs.items()},
        "output": {target.output: shape(target.output, output)},
        "output_range": target.output_range,
        "size_multiple": target.size_multiple,
        "direction": target.direction,
        "labels": target.labels,
    }


@report_user_errors
def export(cfg: DictConfig) -> Path:
    """Write the requested network of the checkpoint to ``output``; returns its path."""
    missing = [f"{key}=" for key in ("checkpoint", "output") if OmegaConf.is_missing(cfg, key)]
    if missing:
        raise ConfigError(
            f"gantrain-export needs {' and '.join(missing)}: for example gantrain-export "
            f"checkpoint=outputs/dcgan/shapes/<run> format=onnx output=generator.onnx"
        )
    file_format, part = ExportFormat(cfg.format), ExportPart(cfg.part)
    direction = None if cfg.direction is None else Direction(cfg.direction)
    trained = load_trained(cfg.checkpoint, resolve_device(cfg.device.type))
    trained.recipe.float()
    target = exportable(trained, part, direction)
    description = describe(trained, part, target)
    convert = to_onnx if file_format == ExportFormat.onnx else to_torchscript
    output = Path(cfg.output)
    write_atomically(output, convert(target, description))
    shapes = "; ".join(f"{name} {shape}" for name, shape in {**description["inputs"], **description["output"]}.items())
    log.info("Wrote the %s %s of %s as %s to %s (%s)", trained.model, part.value, cfg.checkpoint, file_format.value,
             output, shapes)
    return output


@hydra.main(version_base="1.3", config_path="configs", config_name="export")
def main(cfg: DictConfig) -> None:
    export(cfg)


if __name__ == "__main__":
    main()
