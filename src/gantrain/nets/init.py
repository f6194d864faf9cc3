"""Weight initialisation shared by the GAN families."""

from torch import nn


def normal_init(module: nn.Module, std: float = 0.02) -> None:
    """N(0, std) for conv and linear weights, N(1, std) for norm scales, zero biases.

    The initialisation of DCGAN (Radford et al. 2016), reused by CycleGAN and pix2pix.
    Apply with ``network.apply(normal_init)``.
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d)) and module.weight is not None:
        nn.init.normal_(module.weight, 1.0, std)
        nn.init.zeros_(module.bias)
