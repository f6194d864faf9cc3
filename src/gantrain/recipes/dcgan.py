"""DCGAN (Radford et al. 2016): the GAN game with all-convolutional networks."""

from __future__ import annotations

from collections.abc import Sequence

from gantrain.nets.dcgan import dcgan_networks
from gantrain.options import GeneratorLoss
from gantrain.recipes.base import OptimizerFactory
from gantrain.recipes.gan import BinaryGame


class DCGAN(BinaryGame):
    """Same losses and update order as the original GAN, convolutional networks with BatchNorm."""

    def __init__(
        self,
        image_shape: Sequence[int],
        make_optimizer: OptimizerFactory,
        *,
        nz: int,
        ngf: int,
        ndf: int,
        g_loss: GeneratorLoss,
        ema_decay: float,
    ):
        generator, discriminator = dcgan_networks(image_shape, nz, ngf, ndf)
        super().__init__(image_shape, make_optimizer, generator, discriminator, nz, g_loss, ema_decay)


dcgan = DCGAN
"""The target name that checkpoints written before DCGAN became a class store."""
