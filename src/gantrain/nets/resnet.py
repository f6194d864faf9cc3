"""ResNet image-to-image generator of CycleGAN (Zhu et al. 2017), after Johnson et al. 2016.

With the defaults this is the reference "resnet_9blocks" generator (11.378M parameters);
``n_blocks=6`` gives "resnet_6blocks", which the CycleGAN paper uses for 128 pixel images.
The normalisation helpers here are shared with the PatchGAN and U-Net networks.
"""

from __future__ import annotations

import torch
from torch import nn

from gantrain.errors import ConfigError

NORMS = ("instance", "batch", "none")


def image_norm(kind: str, channels: int) -> nn.Module:
    """The normalisation layer named by ``kind``: "instance", "batch" or "none".

    Instance norm has no learned scale and keeps no running statistics, as in the
    CycleGAN and pix2pix code: every image is normalised by its own statistics,
    in training and at inference alike.
    """
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; expected one of {', '.join(NORMS)}")


def conv_bias(kind: str) -> bool:
    """Whether a conv followed by ``kind`` norm needs a bias: BatchNorm's shift already is one."""
    return kind != "batch"


class ResidualBlock(nn.Module):
    """x + (pad, conv3x3, norm, ReLU, [dropout], pad, conv3x3, norm)(x), with reflection padding."""

    def __init__(self, channels: int, norm: str = "instance", use_dropout: bool = False):
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            image_norm(norm, channels),
            nn.ReLU(True),
        ]
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3, bias=bias),
            image_norm(norm, channels),
        ]
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ResnetGenerator(nn.Module):
    """Image -> conv7x7 -> two stride-2 downsamplings -> ``n_blocks`` residual blocks at 4*ngf
    -> two stride-2 transposed-conv upsamplings -> conv7x7 -> tanh image of the same size.

    Reflection padding at the 7x7 and residual convs avoids border artefacts. Image sides
    must be multiples of 4 so that the upsampling restores the input size exactly.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: str = "instance",
        use_dropout: bool = False,
    ):
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7, bias=bias),
            image_norm(norm, ngf),
            nn.ReLU(True),
        ]
        width = ngf
        for _ in range(2):
            layers += [
                nn.Conv2d(width, width * 2, 3, stride=2, padding=1, bias=bias),
                image_norm(norm, width * 2),
                nn.ReLU(True),
            ]
            width *= 2
        layers += [ResidualBlock(width, norm, use_dropout) for _ in range(n_blocks)]
        for _ in range(2):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                image_norm(norm, width // 2),
                nn.ReLU(True),
            ]
            width //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        if height % 4 or width % 4:
            raise ConfigError(
                f"The ResNet generator needs image sides that are multiples of 4, not {height}x{width}; "
                f"set dataset.image_size to a multiple of 4."
            )
        return self.net(images)
