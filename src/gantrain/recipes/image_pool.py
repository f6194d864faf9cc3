"""A history of generated images for the discriminator (Shrivastava et al. 2017, used by CycleGAN)."""

from __future__ import annotations

import torch
from torch import nn


class ImagePool(nn.Module):
    """Keeps up to ``size`` past fakes; once full, each new fake is swapped for a stored one with probability 1/2.

    Showing the discriminator older fakes as well as the newest damps the oscillation
    between the two players.  The choices are made on the host by :meth:`plan`, from
    torch's global RNG in the reference's order (one draw per fake once the pool is full,
    and a second for the slot when it swaps), and staged on the device as slot numbers;
    :meth:`forward` applies them with device operations only, so it runs inside a captured
    CUDA graph too.  The stored images are part of the state dict (extra state), so a
    resumed run sees the same history, and the checkpoints keep the RNG state.
    """

    def __init__(self, size: int = 50):
        super().__init__()
        self.size = size
        self.count = 0  # images stored so far (host side: the plan needs it)
        # buffers, so that they move with the recipe, but not in the state dict (the extra state holds the history)
        self.register_buffer("memory", None, persistent=False)  # size + 1 slots; the last takes discarded writes
        self.register_buffer("slots", None, persistent=False)  # per fake of the planned batch: where it is stored ...
        self.register_buffer("swapped", None, persistent=False)  # ... and whether the image there is returned
        self.planned = False  # whether plan() staged the choices for the next forward

    @property
    def images(self) -> torch.Tensor | list:
        """The stored history, oldest slot first."""
        return [] if self.memory is None else self.memory[: self.count]

    def plan(self, count: int, device: torch.device) -> None:
        """Draw this batch's choices for ``count`` fakes and stage them on ``device`` (no device sync)."""
        if self.size == 0:
            return
        slots, swapped = [], []
        for _ in range(count):
            if self.count < self.size:
                slots.append(self.count)
                swapped.append(False)
                self.count += 1
            elif torch.rand(()) < 0.5:
                slots.append(int(torch.randint(self.count, ())))
                swapped.append(True)
            else:
                slots.append(self.size)  # the discard slot: nothing stored, the new fake returned
                swapped.append(False)
        plan = torch.tensor(slots + [int(s) for s in swapped], dtype=torch.long)
        if device.type == "cuda":
            plan = plan.pin_memory()
        if self.slots is None or self.slots.numel() != count or self.slots.device != device:
            self.slots = torch.empty(count, dtype=torch.long, device=device)
            self.swapped = torch.empty(count, dtype=torch.bool, device=device)
        staged = plan.to(device, non_blocking=True)
        self.slots.copy_(staged[:count])
        self.swapped.copy_(staged[count:].bool())
        self.planned = True

    @torch.no_grad()
    def forward(self, fakes: torch.Tensor) -> torch.Tensor:
        """A batch the size of ``fakes``: some new, some from the history, as planned (planned here if not)."""
        if self.size == 0:
            return fakes
        fakes = fakes.detach()
        if not self.planned:
            self.plan(len(fakes), fakes.device)
        self.planned = False
        if self.memory is None or self.memory.shape[1:] != fakes.shape[1:]:
            self.memory = torch.zeros(self.size + 1, *fakes.shape[1:], dtype=fakes.dtype, device=fakes.device)
        elif self.memory.device != fakes.device:  # a history loaded on the CPU, resumed on a GPU
            self.memory = self.memory.to(fakes.device)
        returned = []
        for index, fake in enumerate(fakes):  # in order: a fake may take the slot an earlier one filled
            slot = self.slots[index : index + 1]
            stored = self.memory.index_select(0, slot)[0].to(fake.dtype)
            returned.append(torch.where(self.swapped[index], stored, fake))
            self.memory.index_copy_(0, slot, fake[None].to(self.memory.dtype))
        return torch.stack(returned)

    def get_extra_state(self) -> dict[str, torch.Tensor]:
        if self.count == 0:
            return {"images": torch.empty(0)}
        return {"images": self.images.clone()}

    def set_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        stored = state["images"]
        self.count = len(stored) if stored.numel() else 0
        self.memory = None
        if self.count:
            self.memory = torch.zeros(self.size + 1, *stored.shape[1:], dtype=stored.dtype, device=stored.device)
            self.memory[: self.count] = stored
