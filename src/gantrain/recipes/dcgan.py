"""DCGAN (Radford et al. 2016): the GAN game with all-convolutional networks."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from gantrain.config import GeneratorLoss, Norm
from gantrain.errors import ConfigError
from gantrain.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from gantrain.nets.init import normal_init
from gantrain.recipes.base import OptimizerFactory
from gantrain.recipes.gan import GAN


def dcgan_networks(
    image_shape: Sequence[int], nz: int, ngf: int, ndf: int, critic_norm: Norm = Norm.batch
) -> tuple[nn.Module, nn.Module]:
    """DCGAN generator and discriminator for a square image shape, with N(0, 0.02) init.

    WGAN and WGAN-GP reuse them (the Wasserstein papers trained DCGAN networks).
    """
    channels, height, width = image_shape
    if height != width:
        raise ConfigError(f"DCGAN networks need square images, got {height}x{width}: set dataset.image_size.")
    generator = DCGANGenerator(nz, ngf, channels, height)
    discriminator = DCGANDiscriminator(ndf, channels, height, Norm(critic_norm))
    generator.apply(normal_init)
    discriminator.apply(normal_init)
    return generator, discriminator


def dcgan(
    image_shape: Sequence[int],
    make_optimizer: OptimizerFactory,
    nz: int = 100,
    ngf: int = 64,
    ndf: int = 64,
    g_loss: GeneratorLoss = GeneratorLoss.non_saturating,
    ema_decay: float = 0.0,
) -> GAN:
    """Same losses and update order as the original GAN, convolutional networks."""
    generator, discriminator = dcgan_networks(image_shape, nz, ngf, ndf)
    return GAN(generator, discriminator, nz, make_optimizer, g_loss, ema_decay)
