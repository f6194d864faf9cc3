"""The official releases' weights, read onto gantrain's networks.

The reference implementations save plain state dicts (one network per file, or a dict of
networks): junyanz/pytorch-CycleGAN-and-pix2pix (``models/networks.py``), yunjey/stargan
(``model.py``) and clovaai/stargan-v2 (``core/model.py``).  This module knows their layouts,
read from that code as facts (module names, layer order, shapes; none of their code is used):
for each gantrain network, which official module holds the same layer (:class:`Layout`), and
which architecture settings an official state dict implies, read from its tensor shapes.

The recipes say which file fills which of their networks (``official_files`` and
``official_import``); ``gantrain-import`` reads the files and accounts for every tensor.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from gantrain.errors import CheckpointError
from gantrain.labels import LabelsConfig
from gantrain.nets.patchgan import PixelDiscriminator
from gantrain.nets.resnet import ResidualBlock, ResnetGenerator
from gantrain.nets.stargan import StarGANDiscriminator, StarGANGenerator, StarGANResidualBlock
from gantrain.nets.stargan_v2 import Discriminator, Generator, MappingNetwork, StyleEncoder
from gantrain.nets.stargan_v2 import ResidualBlock as PreActivationBlock
from gantrain.nets.unet import UnetGenerator
from gantrain.options import Direction

T = TypeVar("T")
STEP = r"(?P<step>latest|\d+)"  # what the references put where a file name says which epoch or iteration


@dataclass(frozen=True)
class OfficialFile:
    """A kind of file that a reference implementation writes."""

    role: str  # the reference's name for the network(s) in it: "G_A", "D", "nets_ema"
    name: str  # its file name, with {step} for the epoch or iteration: "{step}_net_G_A.pth"
    holds: str  # what it holds, for messages
    ignored: str = ""  # why gantrain does not read it (optimizer state), when it does not
    any_name: bool = False  # a lone file of another name is this one (published as <model name>.pth)

    def step(self, file_name: str) -> str | None:
        """The epoch or iteration in ``file_name`` ("latest", "200000") if it is a file of this kind, else None."""
        before, after = self.name.split("{step}")
        match = re.fullmatch(re.escape(before) + STEP + re.escape(after), file_name)
        return match["step"] if match else None


@dataclass
class Weights:
    """The tensors of one official file, by their state-dict names (nested dicts joined with dots)."""

    path: Path
    role: str
    tensors: dict[str, Any]

    def shape(self, key: str, network: str) -> torch.Size:
        """The shape of tensor ``key``, which a file holding ``network`` in the official layout has."""
        value = self.tensors.get(key)
        if not isinstance(value, torch.Tensor):
            first = ", ".join(list(self.tensors)[:4]) or "nothing"
            raise CheckpointError(
                f"{self.path} does not hold {network} in the official layout: it has no tensor {key} (its first "
                f"entries are {first}). Check that source= names the family this file comes from, and that the "
                f"file is the one its name says."
            )
        return value.shape

    def indices(self, pattern: str) -> list[int]:
        """The distinct numbers that the regex group of ``pattern`` takes over the tensor names, sorted."""
        return sorted({int(found[1]) for key in self.tensors if (found := re.match(pattern, key))})

    def has(self, key: str) -> bool:
        return isinstance(self.tensors.get(key), torch.Tensor)


@dataclass(frozen=True)
class ImportRequest:
    """What the user said about the weights; None where the weights or the release decide."""

    weights: Path
    dataset: str | None = None
    direction: Direction | None = None
    labels: tuple[str, ...] | None = None
    image_size: int | None = None

    def published(self, catalogue: Mapping[str, T]) -> T | None:
        """The catalogue entry of the nearest name along the weights' path that it lists: the file's own name
        (horse2zebra.pth) or a folder's, without the ``_pretrained`` the download scripts append
        (checkpoints/horse2zebra_pretrained/latest_net_G.pth)."""
        names = [self.weights.stem, *(folder.name for folder in self.weights.absolute().parents)]
        for name in names:
            if name.removesuffix("_pretrained") in catalogue:
                return catalogue[name.removesuffix("_pretrained")]
        return None


@dataclass(frozen=True)
class Layout:
    """Where a gantrain network's layers are in an official state dict.

    ``modules`` maps official module paths to the gantrain network's; ``unused`` names official
    modules that the reference builds but its forward pass never uses, with why.
    """

    modules: dict[str, str]
    unused: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Placement:
    """One network in an official file: the tensors under ``prefix`` go into the recipe's ``targets``.

    A target is a submodule path of the recipe ("generator", "generator_ema.module"); one
    that the recipe does not keep (an average switched off) is skipped.  With ``ignored``
    the tensors under ``prefix`` are not read, for that reason.
    """

    prefix: str
    targets: tuple[str, ...] = ()
    layout: Callable[[Any], Layout] | None = None
    ignored: str = ""


@dataclass
class OfficialImport:
    """What a recipe makes of the official files given: the config they imply and where their tensors go."""

    dataset: str  # the dataset= option the run is stored with
    model: dict[str, Any]  # model settings the weights imply (model.<key>)
    dataset_values: dict[str, Any]  # dataset settings they imply (dataset.<key>)
    placements: dict[str, tuple[Placement, ...]]  # file role -> the networks in that file
    labels: LabelsConfig | None = None  # multi-domain models: the labels in the order the weights use them
    counters: dict[str, int] = field(default_factory=dict)  # recipe state keys to set once the weights are in
    notes: list[str] = field(default_factory=list)  # what the user should know about the imported run


# -- CycleGAN and pix2pix (junyanz/pytorch-CycleGAN-and-pix2pix, models/networks.py) ------------------------


def residual_stack_layout(network: nn.Module, stack: str, block_stack: str, block_type: type) -> Layout:
    """A generator whose layers sit in one sequential (the reference's ``stack``, gantrain's ``net``) with
    residual blocks among them (their layers in the reference's ``block_stack``, gantrain's ``block``)."""
    modules = {}
    for index, layer in enumerate(network.net):
        modules[f"{stack}.{index}"] = f"net.{index}"
        if isinstance(layer, block_type):
            modules |= {f"{stack}.{index}.{block_stack}.{j}": f"net.{index}.block.{j}" for j in range(len(layer.block))}
    return Layout(modules)


def resnet_generator_layout(network: ResnetGenerator) -> Layout:
    """ResnetGenerator keeps its layers in ``model``, a residual block its own in ``conv_block``; gantrain's
    ``net`` and ``block`` have the same layers at the same indices."""
    return residual_stack_layout(network, "model", "conv_block", ResidualBlock)


def resnet_generator_settings(weights: Weights) -> dict[str, Any]:
    """ngf, n_blocks, norm, use_dropout and the image channels of an official ResnetGenerator state dict."""
    first = weights.shape("model.1.weight", "a ResNet generator")  # the 7x7 conv: (ngf, channels, 7, 7)
    blocks = weights.indices(r"model\.(\d+)\.conv_block\.")
    # dropout sits between a block's two convolutions and moves the second from conv_block.5 to conv_block.6
    second_convs = [weights.tensors.get(f"model.{index}.conv_block.6.weight") for index in blocks]
    return {
        "ngf": first[0],
        "channels": first[1],
        "n_blocks": len(blocks),
        "norm": "batch" if weights.has("model.2.weight") else "instance",  # the reference's InstanceNorm has no affine
        "use_dropout": any(isinstance(conv, torch.Tensor) and conv.dim() == 4 for conv in second_convs),
    }


def unet_generator_layout(network: UnetGenerator) -> Layout:
    """UnetGenerator nests UnetSkipConnectionBlocks, each a ``model`` Sequential: the outermost (down
    conv 0, inner block 1, up conv 3), the middle ones (down conv 1, norm 2, inner block 3, up conv 5, norm 6)
    and the innermost (down conv 1, up conv 3, norm 4)."""
    modules = {"model.model.0": "down", "model.model.3": "up.1"}
    official, ours, block = "model.model.1", "inner", network.inner
    while not isinstance(block.inner, nn.Identity):
        modules |= {
            f"{official}.model.1": f"{ours}.down.1",
            f"{official}.model.2": f"{ours}.down.2",
            f"{official}.model.5": f"{ours}.up.1",
            f"{official}.model.6": f"{ours}.up.2",
        }
        official, ours, block = f"{official}.model.3", f"{ours}.inner", block.inner
    modules |= {f"{official}.model.1": f"{ours}.down.1", f"{official}.model.3": f"{ours}.up.1",
                f"{official}.model.4": f"{ours}.up.2"}
    return Layout(modules)


def unet_generator_settings(weights: Weights) -> dict[str, Any]:
    """ngf, the number of downsamplings, norm and the image channels of an official UnetGenerator state dict."""
    first = weights.shape("model.model.0.weight", "a U-Net generator")  # the outermost down conv: (ngf, channels, 4, 4)
    downsamplings, block = 1, "model.model.1"
    while weights.has(f"{block}.model.1.weight"):  # each inner level has a down conv at model.1
        downsamplings, block = downsamplings + 1, f"{block}.model.3"
    return {
        "ngf": first[0],
        "channels": first[1],
        "downsamplings": downsamplings,
        "norm": "batch" if weights.has("model.model.1.model.2.weight") else "instance",
    }


def patch_discriminator_layout(network: nn.Module) -> Layout:
    """NLayerDiscriminator keeps its layers in ``model``, PixelDiscriminator in ``net``; gantrain in ``net``."""
    official = "net" if isinstance(network, PixelDiscriminator) else "model"
    return Layout({f"{official}.{index}": f"net.{index}" for index in range(len(network.net))})


def patch_discriminator_settings(weights: Weights) -> dict[str, Any]:
    """ndf, the kind (``discriminator``: basic, n_layers or pixel), ``n_layers_d``, norm and the input channels of
    an official NLayerDiscriminator or PixelDiscriminator state dict."""
    if weights.has("net.0.weight"):
        first = weights.shape("net.0.weight", "a pixel discriminator")  # (ndf, in_channels, 1, 1)
        return {"discriminator": "pixel", "ndf": first[0], "in_channels": first[1], "n_layers_d": 3,
                "norm": "batch" if weights.has("net.3.weight") else "instance"}
    first = weights.shape("model.0.weight", "a PatchGAN discriminator")  # (ndf, in_channels, 4, 4)
    convolutions = [index for index in weights.indices(r"model\.(\d+)\.weight")
                    if weights.tensors[f"model.{index}.weight"].dim() == 4]
    n_layers = len(convolutions) - 2  # the first and the last convolution frame the n_layers normalised ones
    return {"discriminator": "basic" if n_layers == 3 else "n_layers", "ndf": first[0], "in_channels": first[1],
            "n_layers_d": n_layers, "norm": "batch" if weights.has("model.3.weight") else "instance"}


# -- StarGAN (yunjey/stargan, model.py) ---------------------------------------------------------------------


def stargan_generator_layout(network: StarGANGenerator) -> Layout:
    """Generator keeps its layers in ``main``, a residual block its own in ``main``; gantrain's ``net`` and
    ``block`` have the same layers at the same indices."""
    return residual_stack_layout(network, "main", "main", StarGANResidualBlock)


def stargan_generator_settings(weights: Weights) -> dict[str, Any]:
    """ngf, n_blocks and the input channels (image channels + labels) of an official StarGAN generator."""
    first = weights.shape("main.0.weight", "a StarGAN generator")  # (ngf, channels + labels, 7, 7)
    return {"ngf": first[0], "inputs": first[1], "n_blocks": len(weights.indices(r"main\.(\d+)\.main\."))}


def stargan_discriminator_layout(network: StarGANDiscriminator) -> Layout:
    """Discriminator: the strided trunk ``main``, the patch head ``conv1`` and the class head ``conv2``."""
    modules = {f"main.{index}": f"trunk.{index}" for index in range(len(network.trunk))}
    return Layout(modules | {"conv1": "source", "conv2": "classes"})


def stargan_discriminator_settings(weights: Weights) -> dict[str, Any]:
    """ndf, its layers, the labels, the image channels and the image size (the class head's kernel covers the
    whole final map) of an official StarGAN discriminator."""
    first = weights.shape("main.0.weight", "a StarGAN discriminator")  # (ndf, channels, 4, 4)
    classes = weights.shape("conv2.weight", "a StarGAN discriminator")  # (labels, width, size / 2**layers, ...)
    layers = len(weights.indices(r"main\.(\d+)\.weight"))
    return {"ndf": first[0], "channels": first[1], "n_layers": layers, "labels": classes[0],
            "image_size": classes[-1] * 2**layers}


# -- StarGAN v2 (clovaai/stargan-v2, core/model.py) ---------------------------------------------------------


def _pre_activation_block(official: str, ours: str, block: PreActivationBlock) -> dict[str, str]:
    """ResBlk names its layers conv1, conv2, norm1, norm2 and conv1x1 (the learned shortcut); gantrain keeps
    them in forward order in ``residual`` and ``shortcut``."""
    convolutions = [i for i, layer in enumerate(block.residual) if isinstance(layer, nn.Conv2d)]
    norms = [i for i, layer in enumerate(block.residual) if isinstance(layer, nn.InstanceNorm2d)]
    modules = {f"{official}.conv{n + 1}": f"{ours}.residual.{i}" for n, i in enumerate(convolutions)}
    modules |= {f"{official}.norm{n + 1}": f"{ours}.residual.{i}" for n, i in enumerate(norms)}
    if any(isinstance(layer, nn.Conv2d) for layer in block.shortcut):
        modules[f"{official}.conv1x1"] = f"{ours}.shortcut.0"
    return modules


def stargan_v2_generator_layout(network: Generator) -> Layout:
    """Generator: from_rgb, ResBlks in ``encode``, AdainResBlks in ``decode`` (conv1, conv2, norm1.fc, norm2.fc,
    conv1x1), to_rgb.  With w_hpf > 0 the reference still builds the decoder's conv1x1 but never uses it."""
    modules = {"from_rgb": "from_rgb", "to_rgb.0": "to_rgb.0", "to_rgb.2": "to_rgb.2"}
    unused = {}
    for index, block in enumerate(network.encoder):
        modules |= _pre_activation_block(f"encode.{index}", f"encoder.{index}", block)
    for index, block in enumerate(network.decoder):
        official, ours = f"decode.{index}", f"decoder.{index}"
        modules |= {f"{official}.conv1": f"{ours}.conv1", f"{official}.conv2": f"{ours}.conv2",
                    f"{official}.norm1.fc": f"{ours}.norm1.style", f"{official}.norm2.fc": f"{ours}.norm2.style"}
        if isinstance(block.shortcut, nn.Conv2d):
            modules[f"{official}.conv1x1"] = f"{ours}.shortcut"
        elif block.shortcut is None:
            unused[f"{official}.conv1x1"] = (
                "the decoder's shortcut convolutions, which the reference builds but does not use with w_hpf > 0"
            )
    return Layout(modules, unused)


def stargan_v2_mapping_layout(network: MappingNetwork) -> Layout:
    """MappingNetwork: the shared MLP ``shared`` and one head per domain in ``unshared``."""
    modules = {f"shared.{index}": f"shared.{index}" for index in range(len(network.shared))}
    for domain, head in enumerate(network.heads):
        modules |= {f"unshared.{domain}.{index}": f"heads.{domain}.{index}" for index in range(len(head))}
    return Layout(modules)


def _trunk(official: str, trunk: nn.Sequential) -> dict[str, str]:
    """The residual trunk that StyleEncoder (``shared``) and Discriminator (``main``) share."""
    modules = {}
    for index, layer in enumerate(trunk):
        if isinstance(layer, PreActivationBlock):
            modules |= _pre_activation_block(f"{official}.{index}", f"trunk.{index}", layer)
        else:
            modules[f"{official}.{index}"] = f"trunk.{index}"
    return modules


def stargan_v2_style_encoder_layout(network: StyleEncoder) -> Layout:
    """StyleEncoder: the trunk ``shared`` and one linear head per domain in ``unshared``."""
    heads = {f"unshared.{domain}": f"heads.{domain}" for domain in range(len(network.heads))}
    return Layout(_trunk("shared", network.trunk) | heads)


def stargan_v2_discriminator_layout(network: Discriminator) -> Layout:
    """Discriminator: ``main`` is the trunk followed by the 1x1 convolution to one logit per domain."""
    return Layout(_trunk("main", network.trunk) | {f"main.{len(network.trunk)}": "logits"})


def stargan_v2_settings(weights: Weights) -> dict[str, Any]:
    """The architecture in a file of StarGAN v2 networks (generator, mapping_network, style_encoder, ...): the
    image size (the style encoder halves it to 4x4, one ResBlk a halving), the first and the widest width, the
    image channels, the generator's downsamplings, the domains and the latent, style and mapping widths."""
    network = "StarGAN v2 networks"
    rgb = weights.shape("generator.from_rgb.weight", network)  # (first width, channels, 3, 3)
    shared = weights.shape("mapping_network.shared.0.weight", network)  # (mapping width, latent)
    heads = weights.indices(r"mapping_network\.unshared\.(\d+)\.")
    style = weights.shape(f"mapping_network.unshared.{heads[-1] if heads else 0}.6.weight", network)
    halvings = weights.indices(r"style_encoder\.shared\.(\d+)\.conv1\.")
    trunk_end = max(weights.indices(r"style_encoder\.shared\.(\d+)\.weight"), default=0)  # the 4x4 convolution
    return {
        "image_size": 2 ** (len(halvings) + 2),
        "first_width": rgb[0],
        "max_width": weights.shape(f"style_encoder.shared.{trunk_end}.weight", network)[0],
        "channels": rgb[1],
        "downsamplings": len(weights.indices(r"generator\.encode\.(\d+)\.")) - 2,  # two bottleneck blocks
        "domains": len(heads),
        "latent_dim": shared[1],
        "mapping_width": shared[0],
        "style_dim": style[0],
    }
