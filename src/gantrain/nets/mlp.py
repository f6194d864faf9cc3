"""Fully connected generator and discriminator of the original GAN (Goodfellow et al. 2014)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from gantrain.errors import ConfigError


class MLPGenerator(nn.Module):
    """Noise -> ReLU hidden layers -> tanh image of ``image_shape`` (C, H, W)."""

    def __init__(self, nz: int, hidden: Sequence[int], image_shape: Sequence[int]):
        super().__init__()
        self.image_shape = tuple(image_shape)
        layers: list[nn.Module] = []
        width = nz
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(inplace=True)]
            width = size
        layers += [nn.Linear(width, math.prod(self.image_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.flatten(1)).view(-1, *self.image_shape)


class Maxout(nn.Module):
    """Each unit is the largest of ``pieces`` consecutive inputs (Goodfellow et al. 2013)."""

    def __init__(self, pieces: int):
        super().__init__()
        self.pieces = pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (-1, self.pieces)).amax(-1)


class MinibatchStd(nn.Module):
    """Appends one feature: the features' standard deviation over the batch, averaged (Karras et al. 2018).

    A batch of near-identical samples stands out by it, so the discriminator can punish
    a generator that draws one kind of shape only.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spread = x.float().std(0, correction=0).mean().to(x.dtype)
        return torch.cat([x, spread.expand(x.size(0), 1)], 1)


class MLPDiscriminator(nn.Module):
    """Image -> LeakyReLU(0.2) hidden layers -> one logit per image.

    ``dropout`` > 0 drops hidden units during training, as the paper's discriminator did
    (Goodfellow et al. trained theirs with dropout), so that it cannot memorise the data.
    ``maxout_pieces`` > 1 makes each hidden unit a maxout of that many linear pieces instead,
    the paper's discriminator units (240 units of 5 pieces per layer for MNIST).
    ``minibatch_std`` (not in the paper) lets the output layer see how much the batch varies.
    ``pack`` > 1 (not in the paper; PacGAN, Lin et al. 2018) judges that many images at once, side by side
    in one input, with one logit per pack: a generator that drops a kind of shape makes packs that lack
    the mix of real ones, which one image alone cannot show.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        hidden: Sequence[int],
        dropout: float = 0.0,
        maxout_pieces: int = 0,
        minibatch_std: bool = False,
        pack: int = 1,
    ):
        super().__init__()
        self.pack = pack
        layers: list[nn.Module] = [nn.Flatten()]
        width = pack * math.prod(image_shape)
        pieces = max(maxout_pieces, 1)
        for size in hidden:
            activation: nn.Module = Maxout(pieces) if maxout_pieces > 1 else nn.LeakyReLU(0.2, inplace=True)
            if dropout:  # in the activation's slot, so that the state-dict keys do not depend on it
                activation = nn.Sequential(activation, nn.Dropout(dropout))
            layers += [nn.Linear(width, size * pieces), activation]
            width = size
        if minibatch_std:  # in the last activation's slot, for the same reason
            layers[-1] = nn.Sequential(layers[-1], MinibatchStd())
            width += 1
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """One logit per image, or per pack of ``pack`` consecutive images."""
        if images.size(0) % self.pack:
            raise ConfigError(
                f"model.d_pack={self.pack} judges images in packs of {self.pack}, and a batch of {images.size(0)} "
                f"does not divide into them: make trainer.batch_size a multiple of {self.pack}."
            )
        return self.net(images.reshape(images.size(0) // self.pack, -1)).view(-1)
