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
import warnings
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

from gantrain.build import answered_version, report_user_errors, require
from gantrain.checkpoint import write_atomically
from gantrain.config import register_configs
from gantrain.device import resolve_device
from gantrain.errors import ConfigError, require_extra
from gantrain.inference import Exportable
from gantrain.options import Direction, ExportFormat
from gantrain.trained import Trained, load_trained

log = logging.getLogger(__name__)
# the ONNX optimizer's notes on every folded constant and removed node are not for users
for optimizer_logger in ("onnxscript", "onnx_ir"):
    logging.getLogger(optimizer_logger).setLevel(logging.WARNING)

METADATA_KEY = "gantrain"  # the ONNX metadata property / TorchScript extra file that describes the inputs

register_configs()


def exportable(trained: Trained, part: str, direction: Direction | None) -> Exportable:
    """The network ``part`` of the trained model (with ``direction`` where it has two), ready to export."""
    parts = trained.recipe.exportables(None if direction is None else direction.value)
    if part not in parts:
        raise ConfigError(
            f"part={part} is not a network of the {trained.model} model; it exports part="
            f"{' or part='.join(parts)}."
        )
    return parts[part]


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
    onnx = require_extra("onnx", "export", "format=onnx")
    require_extra("onnxscript", "export", "format=onnx")
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


def name_dynamic_axes(model: Any, dynamic_axes: dict[str, dict[int, str]]) -> None:
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


def describe(trained: Trained, part: str, target: Exportable) -> dict[str, Any]:
    """What a server needs to feed the file, with dynamic axes by name: stored in it, and logged."""
    with torch.no_grad():
        output = target.network(*target.inputs.values())

    def shape(name: str, tensor: torch.Tensor) -> list[int | str]:
        return [target.dynamic_axes[name].get(axis, size) for axis, size in enumerate(tensor.shape)]

    return {
        "model": trained.model,
        "part": part,
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
    require(cfg, "gantrain-export", ("checkpoint", "output"),
            "checkpoint=outputs/dcgan/shapes/<run> format=onnx output=generator.onnx")
    file_format, part = ExportFormat(cfg.format), cfg.part
    direction = None if cfg.direction is None else Direction(cfg.direction)
    trained = load_trained(cfg.checkpoint, resolve_device(cfg.device.type))
    trained.recipe.float()
    target = exportable(trained, part, direction)
    description = describe(trained, part, target)
    convert = to_onnx if file_format == ExportFormat.onnx else to_torchscript
    output = Path(cfg.output)
    write_atomically(output, convert(target, description))
    shapes = "; ".join(f"{name} {shape}" for name, shape in {**description["inputs"], **description["output"]}.items())
    log.info("Wrote the %s %s of %s as %s to %s (%s)", trained.model, part, cfg.checkpoint, file_format.value,
             output, shapes)
    return output


@hydra.main(version_base="1.3", config_path="configs", config_name="export")
def run(cfg: DictConfig) -> None:
    export(cfg)


def main() -> None:
    if not answered_version():
        run()


if __name__ == "__main__":
    main()
