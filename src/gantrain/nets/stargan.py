"""Generator and discriminator of StarGAN (Choi et al. 2018): one network pair for many domains.

With the defaults at 128 pixels and 5 labels these are the reference networks: 8,430,528
generator and 44,762,048 discriminator parameters. They keep PyTorch's default initialisation,
as the reference does.
"""

from __future__ import annotations

import torch
from torch import nn


def _norm(width: int, kind: str = "instance") -> nn.Module:
    """Instance norm with a learned scale and running statistics, as in the reference, or batch norm.

    The running statistics of instance norm are used only in eval mode; training normalises
    each image by itself, which removes a spatially constant label channel everywhere except
    near the zero-padded borders. Batch norm keeps the label's per-image shift, which helps on
    images whose content lies far from the borders (the embedded shapes).
    """
    if kind == "instance":
        return nn.InstanceNorm2d(width, affine=True, track_running_stats=True)
    if kind == "batch":
        return nn.BatchNorm2d(width)
    raise ValueError(f"unknown StarGAN norm {kind!r}; expected instance or batch")


class StarGANResidualBlock(nn.Module):
    """x + (conv3x3, IN, ReLU, conv3x3, IN)(x) with zero padding and no conv biases."""

    def __init__(self, width: int, norm: str = "instance"):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            _norm(width, norm),
            nn.ReLU(True),
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            _norm(width, norm),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class StarGANGenerator(nn.Module):
    """Translates images to the domain given by a target label vector.

    The labels are replicated over the image and stacked onto its channels. Padding is with
    zeros throughout: a spatially constant label channel is removed by instance norm except
    where the zero padding at the borders breaks the constancy, so reflection padding would
    make the generator ignore the labels. Image sides must be multiples of 4.
    """

    def __init__(
        self, num_labels: int, channels: int = 3, ngf: int = 64, n_blocks: int = 6, norm: str = "instance"
    ):
        super().__init__()
        self.num_labels = num_labels
        layers: list[nn.Module] = [
            nn.Conv2d(channels + num_labels, ngf, 7, padding=3, bias=False),
            _norm(ngf, norm),
            nn.ReLU(True),
        ]
        width = ngf
        for _ in range(2):
            layers += [nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=False), _norm(2 * width, norm)]
            layers.append(nn.ReLU(True))
            width *= 2
        layers += [StarGANResidualBlock(width, norm) for _ in range(n_blocks)]
        for _ in range(2):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, stride=2, padding=1, bias=False),
                _norm(width // 2, norm),
                nn.ReLU(True),
            ]
            width //= 2
        layers += [nn.Conv2d(width, channels, 7, padding=3, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``images`` N x C x H x W, ``labels`` N x num_labels floats -> images in [-1, 1]."""
        batch, _, height, width = images.shape
        label_maps = labels.to(images.dtype).view(batch, self.num_labels, 1, 1)
        label_maps = label_maps.expand(batch, self.num_labels, height, width)
        return self.net(torch.cat([images, label_maps], dim=1))


class StarGANDiscriminator(nn.Module):
    """PatchGAN trunk with two heads: real/fake scores per patch and the image's domain logits.

    ``n_layers`` stride-2 convs double the width from ``ndf`` without normalisation; the class
    head's kernel covers the whole remaining map, so the image size is fixed at construction.
    """

    def __init__(
        self, num_labels: int, image_size: int = 128, channels: int = 3, ndf: int = 64, n_layers: int = 6
    ):
        super().__init__()
        self.image_size = image_size
        reduction = 2**n_layers
        if n_layers < 1 or image_size < reduction or image_size % reduction:
            raise ValueError(
                f"The StarGAN discriminator halves the image {n_layers} times, so the image size must be "
                f"a positive multiple of {reduction}, not {image_size}; change the image size or n_layers."
            )
        layers: list[nn.Module] = [nn.Conv2d(channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.01)]
        width = ndf
        for _ in range(n_layers - 1):
            layers += [nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.01)]
            width *= 2
        self.trunk = nn.Sequential(*layers)
        self.source = nn.Conv2d(width, 1, 3, padding=1, bias=False)
        self.classes = nn.Conv2d(width, num_labels, image_size // reduction, bias=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch scores N x 1 x h x w and class logits N x num_labels."""
        if images.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(
                f"This StarGAN discriminator was built for {self.image_size}x{self.image_size} images, "
                f"not {images.shape[-2]}x{images.shape[-1]}."
            )
        features = self.trunk(images)
        return self.source(features), self.classes(features).flatten(1)
