"""gantrain-import: files in the official layouts land in gantrain's networks tensor for tensor, compute what the
reference networks compute, and the imported run goes through the real commands.

Nothing is downloaded.  The official layouts below are written from the reference code as facts (state-dict
names, shapes, layer order, padding, normalisation): junyanz/pytorch-CycleGAN-and-pix2pix models/networks.py,
yunjey/stargan model.py, clovaai/stargan-v2 core/model.py.  The ``reference_*`` functions compute each
reference network's forward pass from an official state dict alone, with torch.nn.functional, so that an
imported network is checked against what the reference would compute with the same weights, not against
gantrain's own mapping.  The published parameter counts anchor the layouts at full size.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
import torch.nn.functional as F
from helpers import CYCLEGAN, run_cli, run_entry_point
from omegaconf import OmegaConf
from PIL import Image

import gantrain
import gantrain.cli
import gantrain.export
import gantrain.import_weights
import gantrain.translate
from gantrain.checkpoint import load_checkpoint
from gantrain.import_weights import UNUSED_STATISTICS
from gantrain.trained import load_trained

Spec = dict[str, tuple[int, ...]]

# -- official layouts: state-dict name -> shape ----------------------------------------------------------------


def conv(out: int, inp: int, kernel: int, bias: bool = True) -> Spec:
    return {"weight": (out, inp, kernel, kernel), **({"bias": (out,)} if bias else {})}


def conv_t(inp: int, out: int, kernel: int, bias: bool = True) -> Spec:
    return {"weight": (inp, out, kernel, kernel), **({"bias": (out,)} if bias else {})}


def linear(out: int, inp: int) -> Spec:
    return {"weight": (out, inp), "bias": (out,)}


def batch_norm(width: int) -> Spec:
    return {"weight": (width,), "bias": (width,), "running_mean": (width,), "running_var": (width,),
            "num_batches_tracked": ()}


def untracked_instance_norm(width: int) -> Spec:
    """The CycleGAN code's InstanceNorm (no affine) as files of the PyTorch 0.4 era hold it, with running
    statistics that its loader deletes."""
    return {"running_mean": (width,), "running_var": (width,), "num_batches_tracked": ()}


def affine_instance_norm(width: int, tracked: bool) -> Spec:
    return {"weight": (width,), "bias": (width,)} | (untracked_instance_norm(width) if tracked else {})


def sequential(prefix: str, layers: list[Spec], start: int = 0) -> Spec:
    return {f"{prefix}.{start + index}.{name}": shape for index, layer in enumerate(layers) for name, shape in layer.items()}


def nested(prefix: str, spec: Spec) -> Spec:
    return {f"{prefix}.{name}": shape for name, shape in spec.items()}


def cyclegan_norm(norm: str, width: int) -> Spec:
    return batch_norm(width) if norm == "batch" else untracked_instance_norm(width)


def official_resnet_generator(ngf: int, n_blocks: int, norm: str = "instance", dropout: bool = False) -> Spec:
    """ResnetGenerator.model: pad, conv7, norm, ReLU, 2 x (conv3 s2, norm, ReLU), n ResnetBlocks, 2 x (convT3 s2,
    norm, ReLU), pad, conv7 (bias), Tanh; convs have biases with InstanceNorm only.  ResnetBlock.conv_block: pad,
    conv3, norm, ReLU, [Dropout], pad, conv3, norm."""
    bias, width = norm == "instance", ngf
    layers = [{}, conv(ngf, 3, 7, bias), cyclegan_norm(norm, ngf), {}]
    for _ in range(2):
        layers += [conv(2 * width, width, 3, bias), cyclegan_norm(norm, 2 * width), {}]
        width *= 2
    spec = sequential("model", layers)
    for index in range(len(layers), len(layers) + n_blocks):
        block = [{}, conv(width, width, 3, bias), cyclegan_norm(norm, width), {}, *([{}] if dropout else []), {},
                 conv(width, width, 3, bias), cyclegan_norm(norm, width)]
        spec |= sequential(f"model.{index}.conv_block", block)
    tail = []
    for _ in range(2):
        tail += [conv_t(width, width // 2, 3, bias), cyclegan_norm(norm, width // 2), {}]
        width //= 2
    return spec | sequential("model", [*tail, {}, conv(3, width, 7), {}], start=len(layers) + n_blocks)


def official_patch_discriminator(ndf: int, in_channels: int = 3, norm: str = "instance", n_layers: int = 3) -> Spec:
    """NLayerDiscriminator.model: conv4 s2 (bias), LeakyReLU, then (conv4, norm, LeakyReLU) n_layers times, the last
    with stride 1, widths ndf * min(2**n, 8), then conv4 to 1 channel (bias)."""
    bias, width = norm == "instance", ndf
    layers = [conv(ndf, in_channels, 4), {}]
    for n in range(1, n_layers + 1):
        layers += [conv(ndf * min(2**n, 8), width, 4, bias), cyclegan_norm(norm, ndf * min(2**n, 8)), {}]
        width = ndf * min(2**n, 8)
    return sequential("model", [*layers, conv(1, width, 4)])


def official_unet(ngf: int, num_downs: int, norm: str = "batch") -> Spec:
    """UnetGenerator.model nests UnetSkipConnectionBlocks (outer, inner) from (3, ngf), (ngf, 2ngf), (2ngf, 4ngf),
    (4ngf, 8ngf) to (8ngf, 8ngf) innermost, each a ``model`` Sequential.  Outermost: down conv, the next block,
    ReLU, convT (bias), Tanh; middle: LeakyReLU, down conv, norm, the next block, ReLU, convT, norm, [Dropout];
    innermost: LeakyReLU, down conv, ReLU, convT, norm."""
    bias = norm == "instance"
    levels = [(3, ngf), (ngf, 2 * ngf), (2 * ngf, 4 * ngf), (4 * ngf, 8 * ngf)] + [(8 * ngf, 8 * ngf)] * (num_downs - 4)
    spec = nested("model.model.0", conv(ngf, 3, 4, bias)) | nested("model.model.3", conv_t(2 * ngf, 3, 4))
    block = "model.model.1.model"
    for outer, inner in levels[1:-1]:
        spec |= sequential(block, [{}, conv(inner, outer, 4, bias), cyclegan_norm(norm, inner), {}, {},
                                   conv_t(2 * inner, outer, 4, bias), cyclegan_norm(norm, outer)])
        block = f"{block}.3.model"
    outer, inner = levels[-1]
    return spec | sequential(block, [{}, conv(inner, outer, 4, bias), {}, conv_t(inner, outer, 4, bias),
                                     cyclegan_norm(norm, outer)])


def official_stargan_generator(ngf: int, labels: int, n_blocks: int) -> Spec:
    """Generator.main: conv7 (3 + labels in), IN, ReLU, 2 x (conv4 s2, IN, ReLU), n ResidualBlocks (main: conv3, IN,
    ReLU, conv3, IN), 2 x (convT4 s2, IN, ReLU), conv7, Tanh; no biases; IN affine with running statistics."""
    width = ngf
    layers = [conv(ngf, 3 + labels, 7, False), affine_instance_norm(ngf, True), {}]
    for _ in range(2):
        layers += [conv(2 * width, width, 4, False), affine_instance_norm(2 * width, True), {}]
        width *= 2
    spec = sequential("main", layers)
    for index in range(len(layers), len(layers) + n_blocks):
        spec |= sequential(f"main.{index}.main", [conv(width, width, 3, False), affine_instance_norm(width, True), {},
                                                  conv(width, width, 3, False), affine_instance_norm(width, True)])
    tail = []
    for _ in range(2):
        tail += [conv_t(width, width // 2, 4, False), affine_instance_norm(width // 2, True), {}]
        width //= 2
    return spec | sequential("main", [*tail, conv(3, width, 7, False), {}], start=len(layers) + n_blocks)


def official_stargan_discriminator(ndf: int, labels: int, image_size: int, n_layers: int) -> Spec:
    """Discriminator: main = n x (conv4 s2 with bias, LeakyReLU 0.01) doubling from ndf; conv1 = conv3 to 1 channel,
    conv2 = conv with kernel image_size / 2**n to the labels; no biases on the heads."""
    layers, width = [conv(ndf, 3, 4), {}], ndf
    for _ in range(n_layers - 1):
        layers += [conv(2 * width, width, 4), {}]
        width *= 2
    kernel = image_size // 2**n_layers
    return sequential("main", layers) | {"conv1.weight": (1, width, 3, 3), "conv2.weight": (labels, width, kernel, kernel)}


def resblk(dim_in: int, dim_out: int, normalize: bool) -> Spec:
    """ResBlk: conv1 (dim_in -> dim_in), conv2 (dim_in -> dim_out), norm1 and norm2 (IN affine, dim_in) when
    normalising, conv1x1 (no bias) when the width changes."""
    spec = {f"conv1.{k}": v for k, v in conv(dim_in, dim_in, 3).items()} | {
        f"conv2.{k}": v for k, v in conv(dim_out, dim_in, 3).items()}
    if normalize:
        spec |= {f"norm{n}.{k}": v for n in (1, 2) for k, v in affine_instance_norm(dim_in, False).items()}
    return spec | ({"conv1x1.weight": (dim_out, dim_in, 1, 1)} if dim_in != dim_out else {})


def adain_resblk(dim_in: int, dim_out: int, style_dim: int) -> Spec:
    """AdainResBlk: conv1 (dim_in -> dim_out), conv2, norm1.fc / norm2.fc (style -> 2 x width), conv1x1 when the
    width changes (built whatever w_hpf)."""
    spec = {f"conv1.{k}": v for k, v in conv(dim_out, dim_in, 3).items()}
    spec |= {f"conv2.{k}": v for k, v in conv(dim_out, dim_out, 3).items()}
    spec |= {f"norm1.fc.{k}": v for k, v in linear(2 * dim_in, style_dim).items()}
    spec |= {f"norm2.fc.{k}": v for k, v in linear(2 * dim_out, style_dim).items()}
    return spec | ({"conv1x1.weight": (dim_out, dim_in, 1, 1)} if dim_in != dim_out else {})


def official_stargan_v2(image_size: int, domains: int, style_dim: int = 64, latent_dim: int = 16,
                        first_width: int | None = None, max_width: int = 512, mapping_width: int = 512,
                        w_hpf: int = 0, discriminator: bool = False) -> Spec:
    """core/model.py's networks as a nets_ema file holds them (a nets file adds the discriminator).  The reference
    fixes the first width at 2**14 / image_size and the mapping width at 512; the small test files narrow them."""
    first = first_width or 2**14 // image_size
    log2 = int(math.log2(image_size))
    spec = nested("generator.from_rgb", conv(first, 3, 3)) | nested("generator.to_rgb.0", affine_instance_norm(first, False))
    spec |= nested("generator.to_rgb.2", conv(3, first, 1))
    width, decode = first, []
    for index in range(log2 - 4 + (1 if w_hpf else 0)):
        out = min(2 * width, max_width)
        spec |= nested(f"generator.encode.{index}", resblk(width, out, True))
        decode.insert(0, adain_resblk(out, width, style_dim))
        width = out
    for index in range(log2 - 4 + (1 if w_hpf else 0), log2 - 2 + (1 if w_hpf else 0)):
        spec |= nested(f"generator.encode.{index}", resblk(width, width, True))
        decode.insert(0, adain_resblk(width, width, style_dim))
    for index, block in enumerate(decode):
        spec |= nested(f"generator.decode.{index}", block)
    shared = [linear(mapping_width, latent_dim), {}] + [linear(mapping_width, mapping_width), {}] * 3
    spec |= sequential("mapping_network.shared", shared[:-1])
    for domain in range(domains):
        head = [linear(mapping_width, mapping_width), {}] * 3 + [linear(style_dim, mapping_width)]
        spec |= sequential(f"mapping_network.unshared.{domain}", head)

    def trunk(prefix: str) -> tuple[Spec, int, int]:
        layers, width = [conv(first, 3, 3)], first
        for _ in range(log2 - 2):
            layers.append(resblk(width, min(2 * width, max_width), False))
            width = min(2 * width, max_width)
        flat = {f"{prefix}.{index}.{name}": shape for index, layer in enumerate(layers) for name, shape in layer.items()}
        end = len(layers) + 1  # after a LeakyReLU
        return flat | nested(f"{prefix}.{end}", conv(width, width, 4)), width, end + 2

    encoder, width, _ = trunk("style_encoder.shared")
    spec |= encoder | {f"style_encoder.unshared.{d}.{k}": v for d in range(domains) for k, v in linear(style_dim, width).items()}
    if discriminator:
        main, width, logits = trunk("discriminator.main")
        spec |= main | nested(f"discriminator.main.{logits}", conv(domains, width, 1))
    return spec


def count(spec: Spec, prefix: str = "") -> int:
    statistics = ("running_mean", "running_var", "num_batches_tracked")
    return sum(math.prod(shape) for key, shape in spec.items() if key.startswith(prefix) and not key.endswith(statistics))


def test_the_official_layouts_have_the_published_parameter_counts():
    """The layouts above at full size against the figures the reference code prints (REFERENCE.md and the
    StarGAN v2 logs): they are the reference's networks, shape for shape."""
    assert round(count(official_resnet_generator(64, 9)) / 1e6, 3) == 11.378
    assert round(count(official_patch_discriminator(64)) / 1e6, 3) == 2.765
    assert round(count(official_unet(64, 8)) / 1e6, 3) == 54.414
    assert count(official_stargan_generator(64, 5, 6)) == 8_430_528
    assert count(official_stargan_discriminator(64, 5, 128, 6)) == 44_762_048
    assert count(official_stargan_v2(256, 3), "generator.") == 33_892_995  # AFHQ
    assert count(official_stargan_v2(256, 2, w_hpf=1), "generator.") == 43_467_395  # CelebA-HQ


# -- the reference forward passes, from an official state dict alone ---------------------------------------------


def cyclegan_normalised(state: dict, h: torch.Tensor, key: str, norm: str) -> torch.Tensor:
    """BatchNorm with its running statistics (the reference's test.py --eval), InstanceNorm per image."""
    if norm == "batch":
        return F.batch_norm(h, state[f"{key}.running_mean"], state[f"{key}.running_var"], state[f"{key}.weight"],
                            state[f"{key}.bias"], training=False)
    return F.instance_norm(h)


def reference_resnet_generator(state: dict, x: torch.Tensor, norm: str, dropout: bool = False) -> torch.Tensor:
    def conv_at(h, index, **kwargs):
        return F.conv2d(h, state[f"model.{index}.weight"], state.get(f"model.{index}.bias"), **kwargs)

    h = F.relu(cyclegan_normalised(state, conv_at(F.pad(x, (3,) * 4, mode="reflect"), 1), "model.2", norm))
    index = 4
    for _ in range(2):
        h = F.relu(cyclegan_normalised(state, conv_at(h, index, stride=2, padding=1), f"model.{index + 1}", norm))
        index += 3
    while f"model.{index}.conv_block.1.weight" in state:
        block = f"model.{index}.conv_block"
        second = 6 if dropout else 5
        r = F.conv2d(F.pad(h, (1,) * 4, mode="reflect"), state[f"{block}.1.weight"], state.get(f"{block}.1.bias"))
        r = F.relu(cyclegan_normalised(state, r, f"{block}.2", norm))
        r = F.conv2d(F.pad(r, (1,) * 4, mode="reflect"), state[f"{block}.{second}.weight"],
                     state.get(f"{block}.{second}.bias"))
        h = h + cyclegan_normalised(state, r, f"{block}.{second + 1}", norm)
        index += 1
    for _ in range(2):
        h = F.conv_transpose2d(h, state[f"model.{index}.weight"], state.get(f"model.{index}.bias"), stride=2,
                               padding=1, output_padding=1)
        h = F.relu(cyclegan_normalised(state, h, f"model.{index + 1}", norm))
        index += 3
    return torch.tanh(conv_at(F.pad(h, (3,) * 4, mode="reflect"), index + 1))


def reference_patch_discriminator(state: dict, x: torch.Tensor, norm: str, n_layers: int = 3) -> torch.Tensor:
    h = F.leaky_relu(F.conv2d(x, state["model.0.weight"], state["model.0.bias"], stride=2, padding=1), 0.2)
    for n in range(1, n_layers + 1):
        index = 3 * n - 1
        h = F.conv2d(h, state[f"model.{index}.weight"], state.get(f"model.{index}.bias"), stride=2 if n < n_layers else 1,
                     padding=1)
        h = F.leaky_relu(cyclegan_normalised(state, h, f"model.{index + 1}", norm), 0.2)
    return F.conv2d(h, state[f"model.{3 * n_layers + 2}.weight"], state[f"model.{3 * n_layers + 2}.bias"], padding=1)


def reference_unet(state: dict, x: torch.Tensor, norm: str) -> torch.Tensor:
    def level(block: str, h: torch.Tensor) -> torch.Tensor:
        down = F.conv2d(F.leaky_relu(h, 0.2), state[f"{block}.1.weight"], state.get(f"{block}.1.bias"), stride=2,
                        padding=1)
        if f"{block}.3.model.1.weight" in state:  # a middle level: its inner block sits at 3
            inner = level(f"{block}.3.model", cyclegan_normalised(state, down, f"{block}.2", norm))
            up, up_norm = 5, 6
        else:
            inner, up, up_norm = down, 3, 4
        out = F.conv_transpose2d(F.relu(inner), state[f"{block}.{up}.weight"], state.get(f"{block}.{up}.bias"),
                                 stride=2, padding=1)
        return torch.cat([h, cyclegan_normalised(state, out, f"{block}.{up_norm}", norm)], 1)

    down = F.conv2d(x, state["model.model.0.weight"], state.get("model.model.0.bias"), stride=2, padding=1)
    inner = level("model.model.1.model", down)
    return torch.tanh(F.conv_transpose2d(F.relu(inner), state["model.model.3.weight"], state["model.model.3.bias"],
                                         stride=2, padding=1))


def reference_stargan_generator(state: dict, x: torch.Tensor, c: torch.Tensor, per_image: bool) -> torch.Tensor:
    """``per_image``: the reference's test() never calls eval(), so InstanceNorm uses each image's statistics."""
    def normalised(h, key):
        running = (None, None) if per_image else (state[f"{key}.running_mean"], state[f"{key}.running_var"])
        return F.instance_norm(h, *running, state[f"{key}.weight"], state[f"{key}.bias"], use_input_stats=per_image)

    h = torch.cat([x, c[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)
    h = F.relu(normalised(F.conv2d(h, state["main.0.weight"], padding=3), "main.1"))
    index = 3
    for _ in range(2):
        h = F.relu(normalised(F.conv2d(h, state[f"main.{index}.weight"], stride=2, padding=1), f"main.{index + 1}"))
        index += 3
    while f"main.{index}.main.0.weight" in state:
        block = f"main.{index}.main"
        r = F.relu(normalised(F.conv2d(h, state[f"{block}.0.weight"], padding=1), f"{block}.1"))
        h = h + normalised(F.conv2d(r, state[f"{block}.3.weight"], padding=1), f"{block}.4")
        index += 1
    for _ in range(2):
        h = F.conv_transpose2d(h, state[f"main.{index}.weight"], stride=2, padding=1)
        h = F.relu(normalised(h, f"main.{index + 1}"))
        index += 3
    return torch.tanh(F.conv2d(h, state[f"main.{index}.weight"], padding=3))


def reference_stargan_discriminator(state: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    h, index = x, 0
    while f"main.{index}.weight" in state:
        h = F.leaky_relu(F.conv2d(h, state[f"main.{index}.weight"], state[f"main.{index}.bias"], stride=2, padding=1),
                         0.01)
        index += 2
    return F.conv2d(h, state["conv1.weight"], padding=1), F.conv2d(h, state["conv2.weight"]).flatten(1)


def reference_resblk(state: dict, key: str, x: torch.Tensor, downsample: bool) -> torch.Tensor:
    def normalised(h, name):
        if f"{key}.{name}.weight" not in state:
            return h
        return F.instance_norm(h, weight=state[f"{key}.{name}.weight"], bias=state[f"{key}.{name}.bias"])

    shortcut = F.conv2d(x, state[f"{key}.conv1x1.weight"]) if f"{key}.conv1x1.weight" in state else x
    r = F.conv2d(F.leaky_relu(normalised(x, "norm1"), 0.2), state[f"{key}.conv1.weight"], state[f"{key}.conv1.bias"],
                 padding=1)
    if downsample:
        shortcut, r = F.avg_pool2d(shortcut, 2), F.avg_pool2d(r, 2)
    r = F.conv2d(F.leaky_relu(normalised(r, "norm2"), 0.2), state[f"{key}.conv2.weight"], state[f"{key}.conv2.bias"],
                 padding=1)
    return (shortcut + r) / math.sqrt(2)


def reference_adain_resblk(state: dict, key: str, x: torch.Tensor, s: torch.Tensor, upsample: bool,
                           w_hpf: int) -> torch.Tensor:
    def adain(h, name):
        gamma, beta = F.linear(s, state[f"{key}.{name}.fc.weight"], state[f"{key}.{name}.fc.bias"]).chunk(2, 1)
        return (1 + gamma[:, :, None, None]) * F.instance_norm(h) + beta[:, :, None, None]

    def up(h):
        return F.interpolate(h, scale_factor=2, mode="nearest") if upsample else h

    r = F.conv2d(up(F.leaky_relu(adain(x, "norm1"), 0.2)), state[f"{key}.conv1.weight"], state[f"{key}.conv1.bias"],
                 padding=1)
    r = F.conv2d(F.leaky_relu(adain(r, "norm2"), 0.2), state[f"{key}.conv2.weight"], state[f"{key}.conv2.bias"],
                 padding=1)
    if w_hpf:  # without the landmark masks the high-pass branch adds nothing
        return r
    shortcut = up(x)
    if f"{key}.conv1x1.weight" in state:
        shortcut = F.conv2d(shortcut, state[f"{key}.conv1x1.weight"])
    return (r + shortcut) / math.sqrt(2)


def reference_stargan_v2_generator(state: dict, x: torch.Tensor, s: torch.Tensor, downsamplings: int,
                                   w_hpf: int) -> torch.Tensor:
    """Without the landmark masks (no FAN) the forward pass skips the high-pass branch."""
    h = F.conv2d(x, state["generator.from_rgb.weight"], state["generator.from_rgb.bias"], padding=1)
    for index in range(downsamplings + 2):  # then two bottleneck blocks
        h = reference_resblk(state, f"generator.encode.{index}", h, downsample=index < downsamplings)
    for index in range(downsamplings + 2):  # the bottleneck blocks first
        h = reference_adain_resblk(state, f"generator.decode.{index}", h, s, upsample=index >= 2, w_hpf=w_hpf)
    h = F.instance_norm(h, weight=state["generator.to_rgb.0.weight"], bias=state["generator.to_rgb.0.bias"])
    return F.conv2d(F.leaky_relu(h, 0.2), state["generator.to_rgb.2.weight"], state["generator.to_rgb.2.bias"])


def reference_mapping(state: dict, z: torch.Tensor, y: torch.Tensor, domains: int) -> torch.Tensor:
    h = z
    for index in (0, 2, 4, 6):
        h = F.relu(F.linear(h, state[f"mapping_network.shared.{index}.weight"],
                            state[f"mapping_network.shared.{index}.bias"]))
    outputs = []
    for domain in range(domains):
        o = h
        for index in (0, 2, 4, 6):
            key = f"mapping_network.unshared.{domain}.{index}"
            o = F.linear(o, state[f"{key}.weight"], state[f"{key}.bias"])
            o = F.relu(o) if index < 6 else o
        outputs.append(o)
    return torch.stack(outputs, 1)[torch.arange(len(y)), y]


def reference_trunk(state: dict, prefix: str, x: torch.Tensor, halvings: int) -> torch.Tensor:
    """StyleEncoder.shared / Discriminator.main up to the 4x4 convolution and its LeakyReLU."""
    h = F.conv2d(x, state[f"{prefix}.0.weight"], state[f"{prefix}.0.bias"], padding=1)
    for index in range(1, halvings + 1):
        h = reference_resblk(state, f"{prefix}.{index}", h, downsample=True)
    end = halvings + 2  # after a LeakyReLU
    return F.leaky_relu(F.conv2d(F.leaky_relu(h, 0.2), state[f"{prefix}.{end}.weight"], state[f"{prefix}.{end}.bias"]),
                        0.2)


def reference_style_encoder(state: dict, x: torch.Tensor, y: torch.Tensor, halvings: int, domains: int) -> torch.Tensor:
    h = reference_trunk(state, "style_encoder.shared", x, halvings).flatten(1)
    outputs = [F.linear(h, state[f"style_encoder.unshared.{d}.weight"], state[f"style_encoder.unshared.{d}.bias"])
               for d in range(domains)]
    return torch.stack(outputs, 1)[torch.arange(len(y)), y]


def reference_stargan_v2_discriminator(state: dict, x: torch.Tensor, y: torch.Tensor, halvings: int) -> torch.Tensor:
    h = reference_trunk(state, "discriminator.main", x, halvings)
    logits = f"discriminator.main.{halvings + 4}"
    return F.conv2d(h, state[f"{logits}.weight"], state[f"{logits}.bias"]).flatten(1)[torch.arange(len(y)), y]


# -- official files, imports, checks ---------------------------------------------------------------------------


def random_state(spec: Spec, seed: int) -> dict[str, torch.Tensor]:
    """Tensors of the spec's shapes: norm scales near 1, positive variances, small weights."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in spec.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        elif key.endswith(".weight") and len(shape) == 1:
            state[key] = 1 + 0.1 * torch.randn(shape, generator=generator)
        else:
            state[key] = 0.1 * torch.randn(shape, generator=generator)
    return state


def save(state: dict, path: Path, legacy: bool = False) -> dict:
    """As the reference saves it (torch.save of a state dict); ``legacy``: the pre-1.6 format of the published files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return state


def import_run(*args: str) -> dict:
    """gantrain-import in this process, as its console script runs it; the checkpoint it wrote."""
    run_entry_point(gantrain.import_weights.main, *args)
    output = next(arg.removeprefix("output=") for arg in args if arg.startswith("output="))
    return load_checkpoint(Path(output), key="checkpoint")


def import_error(capsys, *args: str) -> str:
    """The one-paragraph message of a refused import."""
    with pytest.raises(SystemExit) as raised:
        run_entry_point(gantrain.import_weights.main, *args)
    assert raised.value.code == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("gantrain: error: ") and "\n" not in message
    return message


def fingerprints(tensors) -> set[tuple]:
    return {(tuple(t.shape), t.float().numpy().tobytes()) for t in tensors if t.is_floating_point()}


def assert_holds_exactly(recipe_state: dict, networks: tuple[str, ...], official: dict, ignored: tuple[str, ...] = ()):
    """The recipe networks' weights are the official file's tensors, value for value, and nothing else: every
    official tensor is in them (but those named ignored) and none of their weights kept another value."""
    ours = [value for key, value in recipe_state.items() if key.split(".")[0] in networks]
    theirs = [value for key, value in official.items() if not key.endswith(ignored)]
    assert fingerprints(ours) == fingerprints(theirs)


def stored_config(state: dict):
    return OmegaConf.create(state["config"])


def test_a_cyclegan_training_run_imports_tensor_for_tensor_and_computes_the_reference_forward(workdir):
    run = workdir / "checkpoints" / "horse2zebra"
    files = {role: save(random_state(spec, seed), run / f"latest_net_{role}.pth", legacy=seed % 2 == 0)
             for seed, (role, spec) in enumerate({"G_A": official_resnet_generator(8, 2),
                                                  "G_B": official_resnet_generator(8, 2),
                                                  "D_A": official_patch_discriminator(8),
                                                  "D_B": official_patch_discriminator(8)}.items())}
    save(random_state(official_resnet_generator(8, 2), 9), run / "5_net_G_A.pth")  # an older epoch: not the newest

    state = import_run("source=cyclegan", f"weights={run}", "dataset_option=horse2zebra", f"output={workdir / 'run'}")

    assert state["step"] == 0 and state["choices"]["model"] == "cyclegan" and state["choices"]["dataset"] == "horse2zebra"
    model = stored_config(state).model
    assert (model.ngf, model.n_blocks, model.norm, model.use_dropout, model.ndf, model.discriminator) == (
        8, 2, "instance", False, 8, "basic")
    imported = state["imported"]
    assert imported["files"]["G_A"].endswith("latest_net_G_A.pth") and imported["initial_weights"] == []
    norms = 5 + 2 * 2 + 3  # the generator's InstanceNorms (5, and 2 in each block), the discriminator's 3
    assert imported["ignored"] == {UNUSED_STATISTICS: 3 * norms * 2}  # mean, var, counter; both of each network
    statistics = ("running_mean", "running_var", "num_batches_tracked")
    # the reference's D_A judges G_A's output, B images: gantrain's discriminator_b
    for role, network in {"G_A": "generator_ab", "G_B": "generator_ba", "D_A": "discriminator_b",
                          "D_B": "discriminator_a"}.items():
        assert_holds_exactly(state["recipe"], (network,), files[role], statistics)

    recipe = load_trained(workdir / "run", torch.device("cpu")).recipe
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(recipe.generator_ab(images), reference_resnet_generator(files["G_A"], images, "instance"),
                              atol=1e-5)
        assert torch.allclose(recipe.generator_ba(images), reference_resnet_generator(files["G_B"], images, "instance"),
                              atol=1e-5)
        assert torch.allclose(recipe.discriminator_b(images),
                              reference_patch_discriminator(files["D_A"], images, "instance"), atol=1e-5)


def test_batch_norm_and_dropout_are_read_from_a_resnet_generator_file(workdir):
    """With dropout the second convolution of each block moves one index up; BatchNorm brings scales and
    running statistics, and convolutions without biases."""
    official = save(random_state(official_resnet_generator(8, 3, "batch", dropout=True), 0),
                    workdir / "mine" / "latest_net_G_A.pth")
    state = import_run("source=cyclegan", f"weights={workdir / 'mine'}", f"output={workdir / 'run'}")
    model = stored_config(state).model
    assert (model.n_blocks, model.norm, model.use_dropout) == (3, "batch", True)
    assert state["choices"]["dataset"] == "unaligned" and state["imported"]["ignored"] == {}
    assert set(state["imported"]["initial_weights"]) == {"generator_ba", "discriminator_a", "discriminator_b"}
    assert_holds_exactly(state["recipe"], ("generator_ab",), official)
    generator = load_trained(workdir / "run", torch.device("cpu")).recipe.generator_ab.eval()
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(generator(images), reference_resnet_generator(official, images, "batch", dropout=True),
                              atol=1e-5)


def test_a_published_cyclegan_model_translates_and_exports_as_the_reference_computes(workdir):
    """style_monet renders photos as Monet paintings: monet2photo's B -> A, as the download script's name says;
    the real commands translate with it, and its ONNX export computes the reference's forward pass."""
    official = save(random_state(official_resnet_generator(8, 2), 3),
                    workdir / "checkpoints" / "style_monet_pretrained" / "latest_net_G.pth", legacy=True)
    result = run_cli("source=cyclegan", "weights=checkpoints/style_monet_pretrained", "output=monet",
                     module="gantrain.import_weights", cwd=workdir)
    assert "direction=BtoA" in result.stdout
    state = load_checkpoint(workdir / "monet", key="checkpoint")
    assert state["choices"]["dataset"] == "monet2photo"
    assert_holds_exactly(state["recipe"], ("generator_ba",), official, ("running_mean", "running_var",
                                                                         "num_batches_tracked"))

    photo = (np.arange(32 * 32 * 3).reshape(32, 32, 3) * 7 % 256).astype(np.uint8)
    Image.fromarray(photo).save(workdir / "photo.png")
    run_cli("checkpoint=monet", "input=photo.png", "output=painted", "direction=BtoA", "device=cpu",
            module="gantrain.translate", cwd=workdir)
    expected = reference_resnet_generator(official, torch.tensor(photo).permute(2, 0, 1)[None].float() / 127.5 - 1,
                                          "instance")
    painted = torch.tensor(np.asarray(Image.open(workdir / "painted" / "photo.png"))).permute(2, 0, 1).float()
    assert (painted - (expected[0] + 1) * 127.5).abs().max() <= 1.0  # the PNG's rounding

    run_entry_point(gantrain.export.main, f"checkpoint={workdir / 'monet'}", "direction=BtoA",
                    f"output={workdir / 'monet.onnx'}")
    session = onnxruntime.InferenceSession(str(workdir / "monet.onnx"))
    images = np.random.default_rng(0).uniform(-1, 1, (2, 3, 36, 28)).astype(np.float32)
    (exported,) = session.run(None, {"image": images})
    assert np.allclose(exported, reference_resnet_generator(official, torch.tensor(images), "instance").numpy(),
                       atol=1e-4)
    metadata = json.loads(onnx.load(workdir / "monet.onnx").metadata_props[0].value)
    assert metadata["model"] == "cyclegan" and metadata["direction"] == "BtoA"


def test_a_published_pix2pix_model_imports_with_its_direction_and_translates(workdir):
    """facades_label2photo translates facades' B (labels) to A (photos); a run's discriminator sees 6 channels."""
    generator = save(random_state(official_unet(8, 5), 4), workdir / "facades_label2photo" / "latest_net_G.pth")
    discriminator = save(random_state(official_patch_discriminator(8, 6, "batch"), 5),
                         workdir / "facades_label2photo" / "latest_net_D.pth")
    state = import_run("source=pix2pix", f"weights={workdir / 'facades_label2photo'}", f"output={workdir / 'run'}")
    config = stored_config(state)
    assert state["choices"]["dataset"] == "facades" and config.dataset.image_size == 32
    assert (config.model.generator, config.model.direction, config.model.norm) == ("unet_32", "BtoA", "batch")
    assert state["imported"]["initial_weights"] == [] and state["imported"]["ignored"] == {}
    assert_holds_exactly(state["recipe"], ("generator",), generator)
    assert_holds_exactly(state["recipe"], ("discriminator",), discriminator)

    recipe = load_trained(workdir / "run", torch.device("cpu")).recipe
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        # the reference with --eval (without it, test.py normalises with each batch's statistics)
        assert torch.allclose(recipe.generator.eval()(images), reference_unet(generator, images, "batch"), atol=1e-5)
        pair = torch.cat([images, -images], 1)
        assert torch.allclose(recipe.discriminator(pair), reference_patch_discriminator(discriminator, pair, "batch"),
                              atol=1e-5)
    Image.new("RGB", (40, 24), (10, 200, 30)).save(workdir / "labels.png")
    run_entry_point(gantrain.translate.main, f"checkpoint={workdir / 'run'}", f"input={workdir / 'labels.png'}",
                    f"output={workdir / 'photos'}", "direction=BtoA", "device=cpu")
    assert Image.open(workdir / "photos" / "labels.png").size == (40, 24)


def test_the_published_stargan_celeba_model_imports_with_its_attributes(workdir):
    """200000-G.ckpt and 200000-D.ckpt: five labels are the published CelebA attributes, hair colours exclusive;
    the class head's kernel gives the image size."""
    folder = workdir / "stargan_celeba_128" / "models"
    generator = save(random_state(official_stargan_generator(8, 5, 2), 6), folder / "200000-G.ckpt", legacy=True)
    discriminator = save(random_state(official_stargan_discriminator(8, 5, 32, 3), 7), folder / "200000-D.ckpt")
    state = import_run("source=stargan", f"weights={folder}", f"output={workdir / 'run'}")
    config = stored_config(state)
    attributes = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
    assert state["choices"]["dataset"] == "celeba" and config.dataset.attributes == attributes
    assert config.dataset.image_size == 32 and (config.model.ngf, config.model.n_blocks, config.model.n_layers_d) == (
        8, 2, 3)
    assert OmegaConf.to_container(config.model.labels) == {
        "names": attributes, "groups": [["Black_Hair", "Blond_Hair", "Brown_Hair"]], "multi_label": True}
    assert state["imported"]["ignored"] == {} and state["imported"]["initial_weights"] == []
    assert_holds_exactly(state["recipe"], ("generator",), generator, ("num_batches_tracked",))
    assert_holds_exactly(state["recipe"], ("discriminator",), discriminator)

    recipe = load_trained(workdir / "run", torch.device("cpu")).recipe
    images, labels = torch.rand(2, 3, 32, 32) * 2 - 1, torch.tensor([[1.0, 0, 0, 1, 0], [0, 1, 0, 0, 1]])
    with torch.no_grad():
        # gantrain translates in eval mode, with the running statistics; the reference's test() in train mode
        assert torch.allclose(recipe.generator(images, labels),
                              reference_stargan_generator(generator, images, labels, per_image=False), atol=1e-5)
        assert torch.allclose(recipe.generator.train()(images, labels),
                              reference_stargan_generator(generator, images, labels, per_image=True), atol=1e-5)
        for ours, theirs in zip(recipe.discriminator(images), reference_stargan_discriminator(discriminator, images)):
            assert torch.allclose(ours, theirs, atol=1e-5)
    Image.new("RGB", (32, 32), (120, 90, 60)).save(workdir / "face.png")
    run_entry_point(gantrain.translate.main, f"checkpoint={workdir / 'run'}", f"input={workdir / 'face.png'}",
                    f"output={workdir / 'blond'}", "target=Blond_Hair", "device=cpu")
    assert (workdir / "blond" / "face.png").is_file()


def stargan_v2_inputs(image_size: int, latent_dim: int, style_dim: int, domains: int) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(11)
    images = torch.rand(3, 3, image_size, image_size, generator=generator) * 2 - 1
    return (images, torch.randn(3, latent_dim, generator=generator), torch.randn(3, style_dim, generator=generator),
            torch.arange(3) % domains)


def test_the_published_stargan_v2_afhq_file_imports_its_averaged_networks(workdir):
    """100000_nets_ema.ckpt holds the averaged generator, mapping network and style encoder: they fill the
    averages and the trained copies; the optimizer state beside it is not even read."""
    folder = workdir / "expr" / "checkpoints" / "afhq"
    sizes = {"style_dim": 8, "latent_dim": 4, "first_width": 8, "max_width": 16, "mapping_width": 16}
    official = save(random_state(official_stargan_v2(32, 3, **sizes), 8), folder / "100000_nets_ema.ckpt", legacy=True)
    torch.save({"optimizer": torch.nn.Linear(2, 2)}, folder / "100000_optims.ckpt")  # pickled code: never read
    state = import_run("source=stargan_v2", f"weights={folder}", f"output={workdir / 'run'}")
    config = stored_config(state)
    assert state["choices"]["dataset"] == "afhq" and config.dataset.image_size == 32
    assert list(config.model.labels.names) == ["cat", "dog", "wild"] and not config.model.labels.multi_label
    assert (config.model.base_width, config.model.max_width, config.model.style_dim, config.model.latent_dim,
            config.model.mapping_width, config.model.generator_downsamplings, config.model.decoder_shortcut) == (
        8, 16, 8, 4, 16, None, True)
    assert state["imported"]["initial_weights"] == ["discriminator"]  # not published
    averages = ("generator_ema", "mapping_ema", "style_encoder_ema")
    assert_holds_exactly(state["recipe"], averages, official)
    assert_holds_exactly(state["recipe"], ("generator", "mapping", "style_encoder"), official)
    assert all(state["recipe"][f"{average}.n_averaged"] == 1 for average in averages)

    recipe = load_trained(workdir / "run", torch.device("cpu")).recipe
    images, latents, styles, domains = stargan_v2_inputs(32, 4, 8, 3)
    with torch.no_grad():
        assert torch.allclose(recipe.generator_ema(images, styles),
                              reference_stargan_v2_generator(official, images, styles, 1, w_hpf=0), atol=1e-5)
        assert torch.allclose(recipe.mapping_ema(latents, domains), reference_mapping(official, latents, domains, 3),
                              atol=1e-5)
        assert torch.allclose(recipe.style_encoder_ema(images, domains),
                              reference_style_encoder(official, images, domains, 3, 3), atol=1e-5)
    Image.new("RGB", (48, 48), (200, 150, 100)).save(workdir / "cat.png")
    run_entry_point(gantrain.translate.main, f"checkpoint={workdir / 'run'}", f"input={workdir / 'cat.png'}",
                    f"output={workdir / 'dogs'}", "target=dog", "num_styles=2", "device=cpu")
    assert len(list((workdir / "dogs").rglob("*.png"))) == 2
    run_entry_point(gantrain.export.main, f"checkpoint={workdir / 'run'}", "part=mapping",
                    f"output={workdir / 'mapping.onnx'}")
    (exported,) = onnxruntime.InferenceSession(str(workdir / "mapping.onnx")).run(
        None, {"latent": latents.numpy(), "domain": domains.numpy()})
    assert np.allclose(exported, reference_mapping(official, latents, domains, 3).numpy(), atol=1e-5)


def test_the_celeba_hq_generator_with_the_high_pass_skip_imports_without_the_skip(workdir):
    """w_hpf=1: one more downsampling, decoder blocks without shortcuts (their conv1x1 built but unused), and the
    FAN landmark network in the file; with a run's nets file the discriminator comes too."""
    sizes = {"style_dim": 8, "latent_dim": 4, "first_width": 8, "max_width": 16, "mapping_width": 16}
    landmarks = {"fan.conv1.weight": torch.randn(4, 3, 3, 3), "fan.bn1.running_mean": torch.zeros(4)}
    averaged = random_state(official_stargan_v2(32, 2, w_hpf=1, **sizes), 9)
    trained = random_state(official_stargan_v2(32, 2, w_hpf=1, discriminator=True, **sizes), 10)
    folder = workdir / "celeba_hq"
    for name, networks in (("100000_nets_ema.ckpt", averaged), ("100000_nets.ckpt", trained)):
        tree: dict[str, dict] = {}
        for key, value in {**networks, **landmarks}.items():
            network, _, rest = key.partition(".")
            tree.setdefault(network, {})[rest] = value
        save(tree, folder / name)
    def used(state: dict) -> dict:
        return {key: value for key, value in state.items() if not (key.startswith("generator.decode") and "conv1x1" in key)}

    state = import_run("source=stargan_v2", f"weights={folder}", f"output={workdir / 'run'}")
    config = stored_config(state)
    assert state["choices"]["dataset"] == "celeba_hq" and list(config.model.labels.names) == ["female", "male"]
    assert (config.model.generator_downsamplings, config.model.decoder_shortcut) == (2, False)
    unused = len(averaged) - len(used(averaged))
    assert unused == 1 and state["imported"]["initial_weights"] == []  # 8 -> 16 -> 16: one width change
    ignored = state["imported"]["ignored"]
    assert ignored[next(reason for reason in ignored if reason.startswith("the FAN"))] == 2 * len(landmarks)
    assert ignored[next(reason for reason in ignored if "shortcut" in reason)] == 2 * unused
    assert_holds_exactly(state["recipe"], ("generator_ema", "mapping_ema", "style_encoder_ema"), used(averaged))
    assert_holds_exactly(state["recipe"], ("generator", "mapping", "style_encoder", "discriminator"), used(trained))

    recipe = load_trained(workdir / "run", torch.device("cpu")).recipe
    images, _, styles, domains = stargan_v2_inputs(32, 4, 8, 2)
    with torch.no_grad():
        assert torch.allclose(recipe.generator_ema(images, styles),
                              reference_stargan_v2_generator(averaged, images, styles, 2, w_hpf=1), atol=1e-5)
        assert torch.allclose(recipe.discriminator(images, domains),
                              reference_stargan_v2_discriminator(trained, images, domains, 3), atol=1e-5)


def test_an_imported_run_fine_tunes_with_init_from(workdir):
    """The run directory is a normal checkpoint: training starts from its networks (init_from=)."""
    run = workdir / "official"
    for seed, (role, spec) in enumerate({"G_A": official_resnet_generator(8, 1), "G_B": official_resnet_generator(8, 1),
                                         "D_A": official_patch_discriminator(8),
                                         "D_B": official_patch_discriminator(8)}.items()):
        save(random_state(spec, seed), run / f"latest_net_{role}.pth")
    imported = import_run("source=cyclegan", f"weights={run}", "dataset_option=shapes_unpaired", "image_size=32",
                          f"output={workdir / 'imported'}")
    # the settings of the imported networks (the tuning for shapes would pick BatchNorm)
    run_entry_point(gantrain.cli.main, *CYCLEGAN, "model.norm=instance", "dataset=shapes_unpaired", "dataset.num_samples=16",
                    "trainer.max_steps=1", "trainer.progress=false", f"init_from={workdir / 'imported'}",
                    f"hydra.run.dir={workdir / 'tuned'}")
    tuned = load_checkpoint(workdir / "tuned", key="checkpoint")
    assert tuned["step"] == 1
    before, after = imported["recipe"]["generator_ab.net.1.weight"], tuned["recipe"]["generator_ab.net.1.weight"]
    assert 0 < (after - before).abs().max() < 0.01  # one Adam step from the imported weights


# -- refusals: one paragraph each ----------------------------------------------------------------------------


def cyclegan_file(workdir: Path, name: str = "latest_net_G.pth", **changes) -> Path:
    state = random_state(official_resnet_generator(8, 2), 0) | changes
    save(state, workdir / "official" / name)
    return workdir / "official" / name


def test_truncated_corrupt_and_pickled_code_files_are_refused(workdir, capsys):
    path = cyclegan_file(workdir)
    data = path.read_bytes()
    for legacy in (False, True):
        save(random_state(official_resnet_generator(8, 2), 0), path, legacy=legacy)
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
        message = import_error(capsys, "source=cyclegan", f"weights={path}", f"output={workdir / 'run'}")
        assert "is truncated, corrupt or not a PyTorch file" in message and "Download it again" in message
    path.write_text("<!DOCTYPE html><html>Dropbox</html>")  # what a failed download leaves
    assert "truncated, corrupt or not a PyTorch file" in import_error(
        capsys, "source=cyclegan", f"weights={path}", f"output={workdir / 'run'}")
    torch.save(torch.nn.Conv2d(3, 8, 7), path)  # a whole module: pickled code
    message = import_error(capsys, "source=cyclegan", f"weights={path}", f"output={workdir / 'run'}")
    assert "Refusing to read" in message and "torch.nn.modules.conv.Conv2d" in message
    assert "model.state_dict()" in message
    path.write_bytes(data)
    assert not (workdir / "run").exists()


def test_weights_that_do_not_fit_list_the_tensors(workdir, capsys):
    path = cyclegan_file(workdir)
    message = import_error(capsys, "source=cyclegan", f"weights={path}", "model.n_blocks=3", f"output={workdir / 'run'}")
    assert "do not fit gantrain's cyclegan networks built with" in message and "model.n_blocks=3" in message
    assert "have no place in the networks (latest_net_G.pth: model.12.bias, latest_net_G.pth: model.12.weight" in message
    assert "tensors of the networks are not in the files (generator_ab.net.12.block.1.weight" in message

    state = random_state(official_resnet_generator(8, 2), 0)
    del state["model.19.bias"]  # the last convolution's
    state["model.7.weight"] = torch.zeros(32, 8, 3, 3)  # a wrong in-width
    save(state, path)
    message = import_error(capsys, "source=cyclegan", f"weights={path}", f"output={workdir / 'run'}")
    assert "1 tensors have other shapes than the networks' (latest_net_G.pth: model.7.weight (32, 8, 3, 3) for " \
           "generator_ab.net.7.weight (32, 16, 3, 3))" in message
    assert "1 tensors of the networks are not in the files (generator_ab.net.19.bias)" in message

    save(random_state(official_stargan_generator(8, 5, 2), 0), path)
    message = import_error(capsys, "source=cyclegan", f"weights={path}", f"output={workdir / 'run'}")
    assert "does not hold a ResNet generator in the official layout: it has no tensor model.1.weight" in message


def test_requests_that_cannot_be_met_are_refused(workdir, capsys):
    path = cyclegan_file(workdir)
    message = import_error(capsys, "source=dcgan", f"weights={path}", f"output={workdir / 'run'}")
    assert "source=cyclegan or source=pix2pix or source=stargan or source=stargan_v2" in message
    (workdir / "empty").mkdir()
    assert "holds no stargan weights: the reference names its files {step}-G.ckpt".replace(
        "{step}", "<step>") in import_error(capsys, "source=stargan", f"weights={workdir / 'empty'}", "output=x")
    assert "dataset_option=nowhere is not a dataset option" in import_error(
        capsys, "source=cyclegan", f"weights={path}", "dataset_option=nowhere", f"output={workdir / 'run'}")
    folder = workdir / "stargan"
    save(random_state(official_stargan_generator(8, 4, 1), 0), folder / "1000-G.ckpt")
    message = import_error(capsys, "source=stargan", f"weights={folder}", f"output={workdir / 'run'}")
    assert "The generator takes 4 labels: name them in the order it was trained with, labels=[a,b,...]" in message
    import_run("source=stargan", f"weights={folder}", "labels=[a,b,c,d]", "dataset_option=domains", f"output={workdir / 'run'}")
    message = import_error(capsys, "source=cyclegan", f"weights={path}", f"output={workdir / 'run'}")
    assert "already holds a run" in message
