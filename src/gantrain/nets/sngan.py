"""SNGAN's networks (Miyato et al. 2018): DCGAN-style ones with every discriminator layer spectrally normalised.

Spectral normalisation divides each weight by its largest singular value (estimated by one
power iteration per training forward pass, ``torch.nn.utils.parametrizations.spectral_norm``),
so every layer, and the discriminator with it, is 1-Lipschitz without a penalty or clipping.
The discriminator has no BatchNorm: the normalisation is the weights'.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from gantrain.nets.dcgan import DCGANDiscriminator, DCGANGenerator, dcgan_networks
from gantrain.options import Norm


def spectrally_normalised(network: nn.Module) -> nn.Module:
    """``network`` with spectral normalisation on the weight of every convolution and linear layer."""
    for module in network.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            spectral_norm(module)
    return network


def sngan_networks(image_shape: Sequence[int], nz: int, ngf: int, ndf: int) -> tuple[DCGANGenerator, DCGANDiscriminator]:
    """The DCGAN generator (BatchNorm) and a spectrally normalised DCGAN discriminator without norm layers."""
    generator, discriminator = dcgan_networks(image_shape, nz, ngf, ndf, critic_norm=Norm.none)
    return generator, spectrally_normalised(discriminator)
