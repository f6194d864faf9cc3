"""``dataset.in_memory=true``: decode every image once, then crop, flip and normalise whole batches at once.

Why: a folder dataset otherwise opens, decodes, resizes, crops, flips and
normalises every image again in every epoch, one item at a time in Python,
which can leave a GPU waiting for the CPU.  A dataset that fits in memory can
instead keep its images decoded, after the deterministic part of the
preprocessing (colour mode, resize to ``load_size`` or to the final size), as
uint8 tensors (a quarter of float32's memory).  Its items are then uint8
``C x H x W`` tensors, and the random part (crop, flip) and the conversion to
float32 in [-1, 1] happen on the collated batch, as a few tensor operations on
whatever device the batch is on.  The embedded shapes datasets keep their
renderings instead of drawing them again.

The interface for whoever draws the batches (the trainer)::

    transform = getattr(dataset, "batch_transform", None)     # None: items are ready as they are
    for batch in loader:                                        # default_collate of the uint8 items
        batch = to_device(batch)
        if transform is not None:
            batch = transform(batch, train=True)                # random crops and flips
    fixed = transform(to_device(collated), train=False)         # centre crop, no flip, no random draw

A batch transform (:class:`BatchTransform`) turns every uint8 tensor of the
batch (a tensor, a tuple such as ``(images, labels)`` or a dict such as
``{"A": ..., "B": ...}``) into float32 in [-1, 1] and returns everything else
(labels, float tensors) unchanged, so applying it to a batch that is already
float does no harm.  Its random numbers are drawn from torch's global CPU RNG,
like the per-item augmentation of the other datasets, so the trainer's
checkpointed RNG state makes runs resume exactly.
"""

import logging
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from tqdm import tqdm

from gantrain.errors import DatasetError

log = logging.getLogger(__name__)

IN_MEMORY_DATASETS = (
    "folder, celeba, the CycleGAN and pix2pix folders (unaligned, aligned and the official datasets such as "
    "horse2zebra or facades) with dataset.preprocess=resize_and_crop, and the embedded shapes, "
    "shapes_unpaired, shapes_paired, shapes_attributes and shapes_domains"
)
PROGRESS_MIN_ITEMS = 1000
"""Smaller datasets are decoded without a progress bar."""


class BatchTransform(Protocol):
    """What ``dataset.batch_transform`` is: the rest of the preprocessing, applied to a collated batch.

    ``train=True``: random crops and flips as the dataset was configured;
    ``train=False``: centre crops, no flips, and no random number drawn.
    """

    def __call__(self, batch: Any, train: bool) -> Any: ...


@dataclass(frozen=True)
class BatchAugment:
    """Per-image random crop and horizontal flip, then uint8 -> float32 in [-1, 1], for whole batches.

    ``size``: the side of the square crop (None: no crop, images keep their
    size).  ``random_crop``: with ``train=True`` each image gets its own
    random crop offsets, otherwise (and always with ``train=False``) the
    centre is cropped as ``v2.CenterCrop`` does.  ``flip``: with
    ``train=True`` each image is mirrored with probability 1/2.  ``paired``:
    the images of one dict item (aligned A and B) share their crop and flip;
    otherwise every image draws its own, as with separate transform calls.
    ``channels`` is checked against the batch.
    """

    size: int | None
    random_crop: bool
    flip: bool
    channels: int
    paired: bool = False

    def __call__(self, batch: Any, train: bool) -> Any:
        if self.paired and isinstance(batch, Mapping):
            images = [value for value in batch.values() if _is_image(value)]
            if not images:
                return dict(batch)
            spots = self._draw(images[0], train)
            return {
                key: self._apply(value, spots) if _is_image(value) else value for key, value in batch.items()
            }
        if _is_image(batch):
            return self._apply(batch, self._draw(batch, train))
        if isinstance(batch, Mapping):
            return {key: self(value, train) for key, value in batch.items()}
        if isinstance(batch, (tuple, list)):
            return type(batch)(self(value, train) for value in batch)
        return batch

    def _draw(self, images: torch.Tensor, train: bool) -> "_Spots":
        """Where each image of the ``N x C x H x W`` batch is cropped and whether it is flipped."""
        count, channels, height, width = images.shape
        if channels != self.channels:
            raise ValueError(
                f"Expected images of {self.channels} channels, got a batch of shape {tuple(images.shape)}."
            )
        size_h, size_w = (height, width) if self.size is None else (self.size, self.size)
        if size_h > height or size_w > width:
            raise ValueError(f"Cannot crop {size_h}x{size_w} pixels from images of {height}x{width}.")
        top: torch.Tensor | int
        left: torch.Tensor | int
        if train and self.random_crop and (size_h, size_w) != (height, width):
            top = torch.randint(height - size_h + 1, (count,))
            left = torch.randint(width - size_w + 1, (count,))
        else:  # v2.CenterCrop's offsets (Python's round: halves to even)
            top, left = round((height - size_h) / 2.0), round((width - size_w) / 2.0)
        flips = torch.rand(count) < 0.5 if train and self.flip else None
        return _Spots(top, left, size_h, size_w, flips)

    @staticmethod
    def _apply(images: torch.Tensor, spots: "_Spots") -> torch.Tensor:
        """Crop and flip uint8 ``images`` as ``spots`` says (one gather), then scale to float32 in [-1, 1]."""
        if isinstance(spots.top, int) and isinstance(spots.left, int) and spots.flips is None:
            images = images[..., spots.top : spots.top + spots.height, spots.left : spots.left + spots.width]
        else:
            count, channels, _, width = images.shape
            rows = torch.as_tensor(spots.top).reshape(-1, 1) + torch.arange(spots.height)
            columns = torch.as_tensor(spots.left).reshape(-1, 1) + torch.arange(spots.width)
            if spots.flips is not None:
                columns = torch.where(spots.flips[:, None], columns.flip(1), columns)
            # each output pixel's position in its flattened image; a gather over H * W is several times
            # faster on the CPU than indexing with four broadcast index tensors
            pixels = (rows[..., None] * width + columns[:, None, :]).expand(count, -1, -1)
            pixels = pixels.reshape(count, 1, -1).to(images.device)
            flat = images.reshape(count, channels, -1)
            images = flat.gather(2, pixels.expand(-1, channels, -1))
            images = images.view(count, channels, spots.height, spots.width)
        return images.to(torch.float32).div_(127.5).sub_(1.0)


@dataclass(frozen=True)
class _Spots:
    """Crop offsets (one int for all images, or N on the CPU), crop size, and flips (N bools or None)."""

    top: torch.Tensor | int
    left: torch.Tensor | int
    height: int
    width: int
    flips: torch.Tensor | None


def _is_image(value: Any) -> bool:
    """uint8 tensors are the images of an in-memory batch (labels are int64 or float)."""
    return isinstance(value, torch.Tensor) and value.dtype == torch.uint8 and value.dim() == 4


def stack_items(count: int, make: Callable[[int], torch.Tensor], what: str) -> torch.Tensor:
    """``make(0) ... make(count - 1)``, tensors of one shape, stacked into one ``count x ...`` tensor.

    ``make`` runs on ``torch.get_num_threads()`` threads (Pillow and NumPy
    release the GIL while decoding, resizing and rendering), and the result
    is filled in place, so memory peaks at the result's size.  Errors (e.g.
    :class:`~gantrain.data.image_files.BadImageFile`) come through unchanged.
    """
    first = make(0)
    size = count * first.numel() * first.element_size()
    shape = "x".join(map(str, first.shape))
    log.info(
        "Keeping %d %s in memory as %s %s: %.1f MiB",
        count,
        what,
        shape,
        str(first.dtype).removeprefix("torch."),
        size / 2**20,
    )
    try:
        stacked = torch.empty((count, *first.shape), dtype=first.dtype)
    except RuntimeError as error:  # the allocator's "can't allocate memory"
        raise DatasetError(
            f"dataset.in_memory=true needs {size / 2**30:.1f} GiB for {count} {what} of {shape} pixels, "
            f"which could not be allocated ({' '.join(str(error).split())}); set dataset.in_memory=false."
        ) from None
    stacked[0] = first

    def fill(index: int) -> None:
        item = make(index)
        if item.shape != first.shape:  # the supported preprocessing gives every item one size
            raise ValueError(
                f"{what} item {index} has shape {tuple(item.shape)}, item 0 {tuple(first.shape)}."
            )
        stacked[index] = item

    threads = max(1, min(torch.get_num_threads(), os.cpu_count() or 1))
    pool = ThreadPoolExecutor(threads)
    try:
        with tqdm(
            total=count,
            initial=1,
            desc=f"Loading {what} into memory",
            unit="image",
            disable=True if count < PROGRESS_MIN_ITEMS else None,
        ) as progress:
            for _ in pool.map(fill, range(1, count)):
                progress.update(1)
    finally:
        pool.shutdown(cancel_futures=True)  # after an error, the files not yet decoded are not decoded
    return stacked


def refuse_in_memory(in_memory: bool, dataset: str, reason: str) -> None:
    """A one-paragraph DatasetError for a dataset that cannot keep its images in memory."""
    if in_memory:
        raise DatasetError(
            f"dataset.in_memory=true is not supported by {dataset} ({reason}); it is supported by "
            f"{IN_MEMORY_DATASETS}. Set dataset.in_memory=false for this dataset."
        )
