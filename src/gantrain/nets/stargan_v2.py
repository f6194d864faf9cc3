"""Networks of StarGAN v2 (Choi et al. 2020), written from the paper's description.

A generator translates an image into the style given by a style code; the style code comes
either from the mapping network (a random latent and a target domain) or from the style
encoder (a reference image of the target domain). The discriminator scores each image only
for its own domain. Every residual output is divided by sqrt(2) to keep unit variance.

Image sizes are powers of two of at least 16. The official CelebA-HQ generator (w_hpf=1) halves
the image once more and its decoder blocks drop their shortcuts, for a high-pass skip branch that
carries detail around facial landmarks found by a pretrained landmark network (FAN);
``downsamplings`` and ``decoder_shortcut`` build that architecture, without the skip branch, which
is left out here (AFHQ does not use it either).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gantrain.errors import ConfigError

MIN_IMAGE_SIZE = 16


def default_base_width(image_size: int) -> int:
    """Width of the first layer: 64 at 256 pixels, wider for smaller images."""
    return 2**14 // image_size


def he_init(module: nn.Module) -> None:
    """He normal (fan-in, ReLU gain) conv and linear weights, zero biases, as in the reference.

    The networks here apply it to themselves when they are built.
    """
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _log2_image_size(image_size: int) -> int:
    """log2 of the image size, after checking it is a power of two the networks can halve."""
    if image_size < MIN_IMAGE_SIZE or image_size & (image_size - 1):
        raise ValueError(
            f"StarGAN v2 networks need an image size that is a power of two of at least "
            f"{MIN_IMAGE_SIZE} (such as 256), not {image_size}."
        )
    return image_size.bit_length() - 1


def _first_width(image_size: int, base_width: int | None, max_width: int) -> int:
    return base_width if base_width is not None else min(default_base_width(image_size), max_width)


def _own_domain(outputs: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
    """Row i of ``outputs`` (N x num_domains x ...) at domain ``domains[i]``."""
    return outputs[torch.arange(len(outputs), device=outputs.device), domains]


class ResidualBlock(nn.Module):
    """Pre-activation residual block, optionally instance-normalised and halving the image.

    The shortcut is the identity unless the width changes (then a 1x1 conv) and is average
    pooled along with the residual branch when downsampling.
    """

    def __init__(self, in_width: int, out_width: int, normalize: bool = False, downsample: bool = False):
        super().__init__()
        residual: list[nn.Module] = []
        if normalize:
            residual.append(nn.InstanceNorm2d(in_width, affine=True))
        residual += [nn.LeakyReLU(0.2), nn.Conv2d(in_width, in_width, 3, padding=1)]
        if downsample:
            residual.append(nn.AvgPool2d(2))
        if normalize:
            residual.append(nn.InstanceNorm2d(in_width, affine=True))
        residual += [nn.LeakyReLU(0.2), nn.Conv2d(in_width, out_width, 3, padding=1)]
        self.residual = nn.Sequential(*residual)
        shortcut: list[nn.Module] = []
        if in_width != out_width:
            shortcut.append(nn.Conv2d(in_width, out_width, 1, bias=False))
        if downsample:
            shortcut.append(nn.AvgPool2d(2))
        self.shortcut = nn.Sequential(*shortcut)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.shortcut(x) + self.residual(x)) / math.sqrt(2)


class AdaIN(nn.Module):
    """Adaptive instance norm: (1 + gamma) * IN(x) + beta, with gamma and beta read off the style.

    The 1 + gamma keeps a zero style map from wiping out the features.
    """

    def __init__(self, style_dim: int, num_features: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(num_features, affine=False)
        self.style = nn.Linear(style_dim, 2 * num_features)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.style(style)[:, :, None, None].chunk(2, dim=1)
        return (1 + gamma) * self.norm(x) + beta


class AdaINResidualBlock(nn.Module):
    """Decoder residual block whose normalisations take the style code; optionally doubles the image.

    Without ``shortcut`` the block outputs its residual branch alone, as the official generator's
    blocks do when its high-pass skip (w_hpf > 0) carries the input's detail instead.
    """

    def __init__(
        self, in_width: int, out_width: int, style_dim: int, upsample: bool = False, shortcut: bool = True
    ):
        super().__init__()
        self.upsample = upsample
        self.norm1 = AdaIN(style_dim, in_width)
        self.conv1 = nn.Conv2d(in_width, out_width, 3, padding=1)
        self.norm2 = AdaIN(style_dim, out_width)
        self.conv2 = nn.Conv2d(out_width, out_width, 3, padding=1)
        self.shortcut: nn.Module | None = None
        if shortcut:
            self.shortcut = (
                nn.Conv2d(in_width, out_width, 1, bias=False) if in_width != out_width else nn.Identity()
            )

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest") if self.upsample else x

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        residual = self.conv1(self._resize(F.leaky_relu(self.norm1(x, style), 0.2)))
        residual = self.conv2(F.leaky_relu(self.norm2(residual, style), 0.2))
        if self.shortcut is None:
            return residual
        return (residual + self.shortcut(self._resize(x))) / math.sqrt(2)


class Generator(nn.Module):
    """Encoder of normalised downsampling blocks, two bottleneck blocks each side, AdaIN decoder.

    The image is halved ``downsamplings`` times, by default log2(image_size) - 4 (at least once),
    so that the bottleneck is 16x16 at any size of at least 32; widths double from ``base_width``
    up to ``max_width`` and the decoder mirrors them back. ``decoder_shortcut=False`` builds decoder
    blocks without shortcuts (see :class:`AdaINResidualBlock`). There is no tanh: the output range
    is learned.
    """

    def __init__(
        self,
        image_size: int,
        channels: int = 3,
        style_dim: int = 64,
        base_width: int | None = None,
        max_width: int = 512,
        downsamplings: int | None = None,
        decoder_shortcut: bool = True,
    ):
        super().__init__()
        log2_size = _log2_image_size(image_size)
        num_downsamplings = max(1, log2_size - 4) if downsamplings is None else downsamplings
        if not 1 <= num_downsamplings <= log2_size:
            raise ConfigError(
                f"The StarGAN v2 generator can halve a {image_size}x{image_size} image 1 to {log2_size} times, "
                f"not {num_downsamplings}: set model.generator_downsamplings in that range, or null for the paper's."
            )
        first_width = _first_width(image_size, base_width, max_width)
        self.from_rgb = nn.Conv2d(channels, first_width, 3, padding=1)
        encoder: list[nn.Module] = []
        decoder: list[nn.Module] = []
        width = first_width
        for _ in range(num_downsamplings):
            out_width = min(2 * width, max_width)
            encoder.append(ResidualBlock(width, out_width, normalize=True, downsample=True))
            decoder.insert(0, AdaINResidualBlock(out_width, width, style_dim, True, decoder_shortcut))
            width = out_width
        for _ in range(2):
            encoder.append(ResidualBlock(width, width, normalize=True))
            decoder.insert(0, AdaINResidualBlock(width, width, style_dim, shortcut=decoder_shortcut))
        self.encoder = nn.Sequential(*encoder)
        self.decoder = nn.ModuleList(decoder)
        self.to_rgb = nn.Sequential(
            nn.InstanceNorm2d(first_width, affine=True),
            nn.LeakyReLU(0.2),
            nn.Conv2d(first_width, channels, 1),
        )
        self.apply(he_init)

    def forward(self, images: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
        """``images`` N x C x H x W and ``styles`` N x style_dim -> translated images."""
        x = self.encoder(self.from_rgb(images))
        for block in self.decoder:
            x = block(x, styles)
        return self.to_rgb(x)


class MappingNetwork(nn.Module):
    """Style codes from random latents: a shared 4-layer MLP, then one 4-layer head per domain."""

    def __init__(self, num_domains: int, latent_dim: int = 16, style_dim: int = 64, width: int = 512):
        super().__init__()
        shared: list[nn.Module] = [nn.Linear(latent_dim, width), nn.ReLU()]
        for _ in range(3):
            shared += [nn.Linear(width, width), nn.ReLU()]
        self.shared = nn.Sequential(*shared)
        self.heads = nn.ModuleList(self._head(width, style_dim) for _ in range(num_domains))
        self.apply(he_init)

    @staticmethod
    def _head(width: int, style_dim: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        for _ in range(3):
            layers += [nn.Linear(width, width), nn.ReLU()]
        return nn.Sequential(*layers, nn.Linear(width, style_dim))

    def forward(self, latents: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
        """``latents`` N x latent_dim and ``domains`` N integers -> N x style_dim."""
        hidden = self.shared(latents)
        return _own_domain(torch.stack([head(hidden) for head in self.heads], dim=1), domains)


def _residual_trunk(
    image_size: int, channels: int, base_width: int | None, max_width: int
) -> tuple[nn.Sequential, int]:
    """The image-to-vector trunk shared by the style encoder and the discriminator, and its width.

    Unnormalised downsampling blocks take the image to 4x4, then a 4x4 valid conv to 1x1.
    """
    num_downsamplings = _log2_image_size(image_size) - 2
    width = _first_width(image_size, base_width, max_width)
    layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1)]
    for _ in range(num_downsamplings):
        out_width = min(2 * width, max_width)
        layers.append(ResidualBlock(width, out_width, downsample=True))
        width = out_width
    layers += [nn.LeakyReLU(0.2), nn.Conv2d(width, width, 4), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers), width


def _check_size(images: torch.Tensor, image_size: int, network: str) -> None:
    if images.shape[-2:] != (image_size, image_size):
        raise ValueError(
            f"This StarGAN v2 {network} was built for {image_size}x{image_size} images, "
            f"not {images.shape[-2]}x{images.shape[-1]}."
        )


class StyleEncoder(nn.Module):
    """Style code of a reference image: residual trunk, then one linear head per domain."""

    def __init__(
        self,
        image_size: int,
        num_domains: int,
        channels: int = 3,
        style_dim: int = 64,
        base_width: int | None = None,
        max_width: int = 512,
    ):
        super().__init__()
        self.image_size = image_size
        self.trunk, width = _residual_trunk(image_size, channels, base_width, max_width)
        self.heads = nn.ModuleList(nn.Linear(width, style_dim) for _ in range(num_domains))
        self.apply(he_init)

    def forward(self, images: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
        """``images`` N x C x S x S and ``domains`` N integers -> N x style_dim."""
        _check_size(images, self.image_size, "style encoder")
        features = self.trunk(images).flatten(1)
        return _own_domain(torch.stack([head(features) for head in self.heads], dim=1), domains)


class Discriminator(nn.Module):
    """One real/fake logit per domain from the residual trunk; each image is judged for its own domain."""

    def __init__(
        self,
        image_size: int,
        num_domains: int,
        channels: int = 3,
        base_width: int | None = None,
        max_width: int = 512,
    ):
        super().__init__()
        self.image_size = image_size
        self.trunk, width = _residual_trunk(image_size, channels, base_width, max_width)
        self.logits = nn.Conv2d(width, num_domains, 1)
        self.apply(he_init)

    def forward(self, images: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
        """``images`` N x C x S x S and ``domains`` N integers -> N logits."""
        _check_size(images, self.image_size, "discriminator")
        return _own_domain(self.logits(self.trunk(images)).flatten(1), domains)
