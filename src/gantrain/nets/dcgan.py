"""DCGAN generator and discriminator (Radford et al. 2016), for 32, 64 and 128 pixel images.

At 64 pixels these are exactly the networks of pytorch/examples ``dcgan/main.py``
(3.57M and 2.76M parameters for RGB); each doubling of the size adds one stride-2
stage on both sides, with twice the channels at the 4x4 end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from gantrain.errors import ConfigError
from gantrain.nets.init import normal_init
from gantrain.options import Norm

SUPPORTED_SIZES = (32, 64, 128)


def _stages(image_size: int) -> int:
    """Number of stride-2 stages between 4x4 and ``image_size``."""
    if image_size not in SUPPORTED_SIZES:
        raise ConfigError(
            f"DCGAN networks support image sizes {', '.join(map(str, SUPPORTED_SIZES))}, not {image_size}: "
            f"set dataset.image_size to one of them."
        )
    return int(math.log2(image_size)) - 2


def _norm(kind: Norm, channels: int) -> nn.Module:
    if kind == Norm.batch:
        return nn.BatchNorm2d(channels)
    if kind == Norm.layer:
        return nn.GroupNorm(1, channels)
    return nn.Identity()


class DCGANGenerator(nn.Module):
    """Noise (nz) -> 4x4 -> transposed-conv stages with BatchNorm + ReLU -> tanh image."""

    def __init__(self, nz: int = 100, ngf: int = 64, channels: int = 3, image_size: int = 64):
        super().__init__()
        stages = _stages(image_size)
        width = ngf * 2 ** (stages - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(nz, width, 4, 1, 0, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(True),
        ]
        for _ in range(stages - 1):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width // 2),
                nn.ReLU(True),
            ]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.nz = nz

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.size(0), self.nz, 1, 1))


class DCGANDiscriminator(nn.Module):
    """Image -> strided convs with LeakyReLU(0.2) (no norm on the first) -> one score per image.

    ``norm`` is BatchNorm for DCGAN and WGAN; the WGAN-GP critic must not mix samples
    in a batch (the penalty is per sample), so it uses ``Norm.layer`` or ``Norm.none``.
    """

    def __init__(self, ndf: int = 64, channels: int = 3, image_size: int = 64, norm: Norm = Norm.batch):
        super().__init__()
        stages = _stages(image_size)
        layers: list[nn.Module] = [nn.Conv2d(channels, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        width = ndf
        for _ in range(stages - 1):
            layers += [
                nn.Conv2d(width, width * 2, 4, 2, 1, bias=norm == Norm.none),
                _norm(norm, width * 2),
                nn.LeakyReLU(0.2, True),
            ]
            width *= 2
        layers.append(nn.Conv2d(width, 1, 4, 1, 0, bias=False))
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).view(-1)


def dcgan_networks(
    image_shape: Sequence[int], nz: int, ngf: int, ndf: int, critic_norm: Norm = Norm.batch
) -> tuple[DCGANGenerator, DCGANDiscriminator]:
    """DCGAN generator and discriminator for a square image shape, with N(0, 0.02) init.

    WGAN, WGAN-GP and SNGAN reuse them (their papers trained DCGAN-style networks).
    """
    channels, height, width = image_shape
    if height != width:
        raise ConfigError(f"DCGAN networks need square images, got {height}x{width}: set dataset.image_size.")
    generator = DCGANGenerator(nz, ngf, channels, height)
    discriminator = DCGANDiscriminator(ndf, channels, height, Norm(critic_norm))
    generator.apply(normal_init)
    discriminator.apply(normal_init)
    return generator, discriminator
