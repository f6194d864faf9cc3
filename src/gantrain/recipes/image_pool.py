"""A history of generated images for the discriminator (Shrivastava et al. 2017, used by CycleGAN)."""

from __future__ import annotations

import torch
from torch import nn


class ImagePool(nn.Module):
    """Keeps up to ``size`` past fakes; once full, each new fake is swapped for a stored one with probability 1/2.

    Showing the discriminator older fakes as well as the newest damps the oscillation
    between the two players.  The stored images are part of the state dict (extra
    state), so a resumed run sees the same history; the random choices draw from
    torch's global RNG, which the checkpoints keep too.
    """

    def __init__(self, size: int = 50):
        super().__init__()
        self.size = size
        self.images: list[torch.Tensor] = []

    @torch.no_grad()
    def forward(self, fakes: torch.Tensor) -> torch.Tensor:
        """Returns a batch the size of ``fakes``: some new, some from the history."""
        if self.size == 0:
            return fakes
        if self.images and self.images[0].device != fakes.device:  # a history loaded on the CPU, resumed on a GPU
            self.images = [image.to(fakes.device) for image in self.images]
        returned = []
        for fake in fakes.detach():
            if len(self.images) < self.size:
                self.images.append(fake.clone())
                returned.append(fake)
            elif torch.rand(()) < 0.5:
                index = int(torch.randint(len(self.images), ()))
                returned.append(self.images[index])
                self.images[index] = fake.clone()
            else:
                returned.append(fake)
        return torch.stack(returned)

    def get_extra_state(self) -> dict[str, torch.Tensor]:
        return {"images": torch.stack(self.images) if self.images else torch.empty(0)}

    def set_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        self.images = list(state["images"].unbind(0)) if state["images"].numel() else []
