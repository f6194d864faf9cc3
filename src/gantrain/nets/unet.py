"""U-Net generator of pix2pix (Isola et al. 2017).

With the defaults this is the reference "unet_256" generator (54.41M parameters);
``num_downs=7`` gives "unet_128". Skip connections carry the input's low-level
structure (edges, layout) straight to the decoder, which an encoder-decoder
bottleneck would lose.
"""

from __future__ import annotations

import torch
from torch import nn

from gantrain.errors import ConfigError
from gantrain.nets.resnet import conv_bias, image_norm


class UnetSkipBlock(nn.Module):
    """One inner U-Net level: x -> cat([x, up(inner(down(x)))]), half the size in the middle.

    ``down`` is LeakyReLU, stride-2 conv4x4 and norm (no norm at the innermost level,
    whose 1x1 map a norm would zero); ``up`` is ReLU, stride-2 transposed conv4x4, norm and
    optionally Dropout(0.5). ``inner`` is the next level down, or None at the innermost.
    """

    def __init__(
        self,
        outer_channels: int,
        inner_channels: int,
        inner: UnetSkipBlock | None = None,
        norm: str = "batch",
        use_dropout: bool = False,
    ):
        super().__init__()
        bias = conv_bias(norm)
        down: list[nn.Module] = [
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(outer_channels, inner_channels, 4, stride=2, padding=1, bias=bias),
        ]
        if inner is not None:
            down.append(image_norm(norm, inner_channels))
        up_in_channels = inner_channels * 2 if inner is not None else inner_channels
        up: list[nn.Module] = [
            nn.ReLU(True),
            nn.ConvTranspose2d(up_in_channels, outer_channels, 4, stride=2, padding=1, bias=bias),
            image_norm(norm, outer_channels),
        ]
        if use_dropout:
            up.append(nn.Dropout(0.5))
        self.down = nn.Sequential(*down)
        self.inner = inner if inner is not None else nn.Identity()
        self.up = nn.Sequential(*up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.up(self.inner(self.down(x)))], 1)


class UnetGenerator(nn.Module):
    """Image -> ``num_downs`` stride-2 conv levels down to 1x1 and back, with skip connections -> tanh image.

    Widths double from ``ngf`` to at most 8*ngf (64, 128, 256, 512, 512, ... for ngf=64),
    so image sides must be multiples of 2**num_downs. ``use_dropout`` puts Dropout(0.5)
    in the decoder of the num_downs - 5 levels that are 8*ngf wide on both sides, not
    counting the innermost (three for unet_256). pix2pix keeps that dropout active at test time as its only noise
    source; these are plain ``nn.Dropout`` layers, so the recipe decides by leaving the
    generator in train mode or not.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "batch",
        use_dropout: bool = True,
    ):
        super().__init__()
        self.num_downs = num_downs
        widths = [ngf * min(2**level, 8) for level in range(num_downs)]
        inner: UnetSkipBlock | None = None
        for level in range(num_downs - 1, 0, -1):
            is_middle = inner is not None and widths[level - 1] == 8 * ngf
            inner = UnetSkipBlock(widths[level - 1], widths[level], inner, norm, use_dropout and is_middle)
        self.down = nn.Conv2d(in_channels, ngf, 4, stride=2, padding=1, bias=conv_bias(norm))
        self.inner = inner
        self.up = nn.Sequential(
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, out_channels, 4, stride=2, padding=1),
            nn.Tanh(),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        multiple = 2**self.num_downs
        height, width = images.shape[-2:]
        if height % multiple or width % multiple:
            smaller = " or model.generator=unet_128" if self.num_downs == 8 else ""
            raise ConfigError(
                f"unet_{multiple} needs images whose sides are multiples of {multiple}, not {height}x{width}; "
                f"set dataset.image_size={multiple}{smaller}."
            )
        return self.up(self.inner(self.down(images)))
