"""PatchGAN discriminators of pix2pix (Isola et al. 2017) and CycleGAN (Zhu et al. 2017).

They score local patches instead of whole images, so the adversarial loss pushes for
sharp texture and leaves the low frequencies to the L1 or cycle loss. With the
defaults :class:`PatchDiscriminator` is the reference "basic" 70x70 PatchGAN
(2.765M parameters); :class:`PixelDiscriminator` is the 1x1 "pixel" variant.
"""

from __future__ import annotations

import torch
from torch import nn

from gantrain.nets.init import normal_init
from gantrain.nets.resnet import conv_bias, image_norm
from gantrain.options import ImageNorm, PatchDiscriminatorKind


class PatchDiscriminator(nn.Module):
    """Image -> ``n_layers`` stride-2 conv4x4 stages -> two stride-1 conv4x4 -> map of patch logits.

    Each output logit sees a 70x70 patch with ``n_layers=3`` (a 256x256 image gives a
    30x30 map); the widths double from ``ndf`` up to at most 8*ndf. The first conv has
    no norm, and the output is raw logits for a BCE or least-squares loss.
    For pix2pix, ``in_channels`` counts the condition and the image together.
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance"):
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        width = ndf
        for n in range(1, n_layers + 1):
            stride = 2 if n < n_layers else 1
            next_width = ndf * min(2**n, 8)
            layers += [
                nn.Conv2d(width, next_width, 4, stride=stride, padding=1, bias=bias),
                image_norm(norm, next_width),
                nn.LeakyReLU(0.2, True),
            ]
            width = next_width
        layers.append(nn.Conv2d(width, 1, 4, stride=1, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


class PixelDiscriminator(nn.Module):
    """Image -> three 1x1 convs -> one logit per pixel (a 1x1 PatchGAN).

    It judges only colour statistics, not structure, so it leaves spatial detail alone.
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, norm: str = "instance"):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, bias=conv_bias(norm)),
            image_norm(norm, ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


def patch_discriminator(
    kind: PatchDiscriminatorKind, in_channels: int, ndf: int, n_layers: int, norm: ImageNorm
) -> nn.Module:
    """The discriminator named by ``model.discriminator`` (``n_layers`` for the ``n_layers`` kind), N(0, 0.02) init."""
    kind, norm = PatchDiscriminatorKind(kind), ImageNorm(norm).value
    if kind == PatchDiscriminatorKind.pixel:
        network = PixelDiscriminator(in_channels, ndf, norm=norm)
    else:
        network = PatchDiscriminator(in_channels, ndf, 3 if kind == PatchDiscriminatorKind.basic else n_layers, norm)
    network.apply(normal_init)
    return network
