"""``dataset.in_memory``: decode every image once, then crop, flip and normalise whole batches at once.

``auto`` (the default) keeps the images when their uint8 pixels fit within
``MEMORY_SHARE`` of the memory available at start-up, and says so in the log
with the figures; ``true`` and ``false`` force it.  The kept images stay in host
memory: each batch goes to the device as it is drawn, so only the host's memory
is budgeted.

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
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from tqdm import tqdm

from gantrain.data.image_files import BadImageFile
from gantrain.errors import DatasetError

log = logging.getLogger(__name__)

IN_MEMORY_DATASETS = (
    "folder, celeba, the CycleGAN and pix2pix folders (unaligned, aligned and the official datasets such as "
    "horse2zebra or facades) with dataset.preprocess=resize_and_crop, and the embedded shapes, "
    "shapes_unpaired, shapes_paired, shapes_attributes and shapes_domains"
)
PROGRESS_MIN_ITEMS = 1000
"""Smaller datasets are decoded without a progress bar."""
MEMORY_SHARE = 0.5
"""``dataset.in_memory=auto`` keeps the images when they take at most this share of the memory available at
start-up (Linux's MemAvailable: free memory plus what the kernel can reclaim), leaving the other half to the
networks, the optimizers and the rest of the machine."""
IN_MEMORY_SETTINGS = "dataset.in_memory=auto (keep the images when they fit), true or false"

_skip_bad_files: ContextVar[bool] = ContextVar("skip_bad_files", default=False)


@contextmanager
def skipping_bad_files(skip: bool) -> Iterator[None]:
    """Datasets built inside keep decoding past bad files (``trainer.bad_files=skip``): see :func:`stack_items`."""
    token = _skip_bad_files.set(skip)
    try:
        yield
    finally:
        _skip_bad_files.reset(token)


def available_memory() -> int:
    """Bytes of memory available to a new allocation: MemAvailable on Linux, else the free physical pages."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def mebibytes(size: float) -> str:
    return f"{size / 2**20:,.1f} MiB" if size < 2**30 else f"{size / 2**30:,.1f} GiB"


def keeps_in_memory(setting: bool | str, count: int, item_shape: tuple[int, ...], what: str) -> bool:
    """Whether a dataset keeps its ``count`` decoded ``item_shape`` uint8 images (``dataset.in_memory``).

    ``true`` / ``false`` as set; ``auto``: when they fit within :data:`MEMORY_SHARE` of the available memory,
    shared among the processes of this machine under torchrun (each keeps a copy).  The decision and its figures
    go to the log.
    """
    if setting is True or setting is False:
        return setting
    if setting != "auto":
        raise DatasetError(f"dataset.in_memory={setting!r} is not a choice: use {IN_MEMORY_SETTINGS}.")
    need = count * math.prod(item_shape)
    available = available_memory()
    share = MEMORY_SHARE / int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # torchrun: a copy in every process
    keep = need <= share * available
    log.info(
        "dataset.in_memory=auto: %s. %d %s of %s uint8 take %s; the budget is %s (%d%% of the %s available)%s",
        "on" if keep else "off", count, what, "x".join(map(str, item_shape)), mebibytes(need),
        mebibytes(share * available), round(100 * share), mebibytes(available),
        "." if keep else ": each image is decoded when a batch needs it (trainer.num_workers=N decodes in "
        "N processes; dataset.in_memory=true keeps them anyway).",
    )
    return keep


def auto_off(setting: bool | str, dataset: str, reason: str) -> None:
    """For a dataset that cannot keep its images in memory: ``auto`` says so in the log, ``true`` is an error."""
    if setting is True:
        raise DatasetError(
            f"dataset.in_memory=true is not supported by {dataset} ({reason}); it is supported by "
            f"{IN_MEMORY_DATASETS}. Set dataset.in_memory=auto or false for this dataset."
        )
    if setting == "auto":
        log.info("dataset.in_memory=auto: off, %s cannot keep decoded images (%s).", dataset, reason)
    elif setting is not False:
        raise DatasetError(f"dataset.in_memory={setting!r} is not a choice: use {IN_MEMORY_SETTINGS}.")


class KeptImages:
    """The stacked images of an in-memory dataset; an item whose file could not be decoded raises its
    :class:`BadImageFile` when drawn, as it would without ``in_memory``, so ``trainer.bad_files`` applies."""

    def __init__(self, images: torch.Tensor, bad: dict[int, BadImageFile]):
        self.images, self.bad = images, bad

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: int | tuple) -> torch.Tensor:
        index = int(key[0] if isinstance(key, tuple) else key)
        if index in self.bad:
            raise self.bad[index]
        return self.images[key]


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


def stack_items(count: int, make: Callable[[int], torch.Tensor], what: str) -> KeptImages:
    """``make(0) ... make(count - 1)``, tensors of one shape, stacked into one ``count x ...`` tensor.

    ``make`` runs on ``torch.get_num_threads()`` threads (Pillow and NumPy
    release the GIL while decoding, resizing and rendering), and the result
    is filled in place, so memory peaks at the result's size.  A
    :class:`~gantrain.data.image_files.BadImageFile` stops the run here, or
    inside :func:`skipping_bad_files` is logged and kept for its item to raise
    when drawn; other errors come through unchanged.
    """
    skip_bad = _skip_bad_files.get()  # read here: the decoding threads do not inherit the context
    started = time.perf_counter()
    bad: dict[int, BadImageFile] = {}

    def attempt(index: int) -> torch.Tensor | None:
        try:
            return make(index)
        except BadImageFile as error:
            if not skip_bad:
                raise
            bad[index] = error
            return None

    first_index = 0
    while (first := attempt(first_index)) is None:
        first_index += 1
        if first_index == count:
            raise DatasetError(f"None of the {count} {what} can be decoded; the first: {bad[0]}")
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
    stacked[first_index] = first

    def fill(index: int) -> None:
        item = attempt(index)
        if item is None:
            stacked[index] = 0
            return
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
            for _ in pool.map(fill, range(first_index + 1, count)):
                progress.update(1)
    finally:
        pool.shutdown(cancel_futures=True)  # after an error, the files not yet decoded are not decoded
    log.info("Kept %d %s in memory in %.1f s", count - len(bad), what, time.perf_counter() - started)
    for error in sorted(bad.values(), key=lambda error: str(error.file)):
        log.warning("Skipped at start-up (trainer.bad_files=skip): %s", error)
    return KeptImages(stacked, bad)
