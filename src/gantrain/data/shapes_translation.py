"""Generated image-to-image translation tasks on the shapes of :mod:`gantrain.data.shapes`, with judges.

ShapesUnpaired (circle -> square, unpaired like horse2zebra)
    Item ``i`` holds a circle (A) and an independently drawn square (B).  A
    good translation of a circle is the square of the same colour, centre and
    size, so :func:`judge_unpaired` checks that the kind changed and the rest
    did not, without any network.
ShapesPaired (outline -> filled shape, paired like edges2shoes)
    A is a shape's coloured outline, B the same shape filled; any of the three
    kinds.  :func:`judge_paired` compares outputs with the known B pixel by pixel.

Sizes, positions and colours follow ShapesDataset's distributions on a black
background.  Every image is drawn from
``np.random.default_rng([seed, split code, index, side])`` alone, so items do
not depend on the access order and the train and test splits share no image.
With ``in_memory`` every item is rendered once, at construction, and kept as
:func:`gantrain.data.shapes.stored_image` says; ``batch_transform`` scales the
batches to [-1, 1].

judge_unpaired (colours in [0, 1])
    Foreground as in :func:`gantrain.data.shapes.judge`: pixels whose largest
    channel difference from the border median exceeds 0.15.  Its position is
    the foreground's centroid; its colour the per-channel median over the core,
    the foreground pixels at least as far from the background as the median
    foreground pixel, so anti-aliased or blurred rims do not darken it.
    The colour is kept if no channel moved by more than 0.1 (about 25 of 255
    levels): exact and 3x3-blurred renderings move by 0, Gaussian noise of
    sigma 0.05 by under 0.04 (95th percentile), while two independent dataset
    colours agree that closely only 1.2% of the time.  The position is kept
    if the centroid moved by at most 0.05 of the image size (1.6 px at 32 px):
    exact renderings move by up to 0.02, while independent positions, which
    cluster near the middle, come that close 6% of the time (23% at 0.1).
"""

from typing import ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from gantrain.data.in_memory import BatchAugment, keeps_in_memory, stack_items
from gantrain.data.shapes import (
    FOREGROUND_MIN_DISTANCE,
    MIN_IMAGE_SIZE,
    SHAPE_NAMES,
    contrasting_colour,
    image_tensor,
    judge,
    random_placement,
    render_shape,
    shape_coverage,
    stored_image,
)
from gantrain.errors import DatasetError

SPLIT_CODES = {"train": 0, "test": 1}
BACKGROUND = (0, 0, 0)
OUTLINE_WIDTH_SHARE = 1 / 16
"""Outline width as a share of the image size: 2 px at 32 px."""
COLOUR_TOLERANCE = 0.1
POSITION_TOLERANCE = 0.05
PSNR_CAP_DB = 100.0
"""PSNR reported for identical images, whose true PSNR is infinite."""


class _ShapesTranslation(Dataset):
    """Argument checks and tensor conversion shared by the two shapes translation datasets.

    ``path`` and ``download`` are accepted and ignored so the shapes share the
    keyword signature of the file-based translation configs.  Subclasses
    draw an item's images in ``_renderings``; in memory, ``images`` holds them
    all (N x images per item x C x H x W).
    """

    sides: tuple[str, ...] = ("A", "B")

    def __init__(
        self,
        path: str | None = None,
        image_size: int = 32,
        channels: int = 3,
        download: bool = False,
        split: str = "train",
        num_samples: int = 20000,
        seed: int = 0,
        in_memory: bool | str = False,
    ) -> None:
        if image_size < MIN_IMAGE_SIZE:
            raise DatasetError(f"The shapes datasets need image_size >= {MIN_IMAGE_SIZE}, got {image_size}.")
        if num_samples < 1:
            raise DatasetError(f"The shapes datasets need num_samples >= 1, got {num_samples}.")
        if channels not in (1, 3):
            raise DatasetError(f"The shapes datasets have 1 (grayscale) or 3 (RGB) channels, got {channels}.")
        if split not in SPLIT_CODES:
            raise DatasetError(f"dataset.split={split!r} is not supported; use dataset.split=train or test.")
        self.image_size = image_size
        self.channels = channels
        self.split = split
        self.num_samples = num_samples
        self.seed = seed
        self.images: torch.Tensor | None = None
        self.batch_transform: BatchAugment | None = None
        if self._keeps_in_memory(in_memory):
            self._keep_in_memory()

    def _keeps_in_memory(self, setting: bool | str) -> bool:
        """``dataset.in_memory`` for this split's renderings (an item holds one or two images)."""
        shape = (len(self._renderings(0)), self.channels, self.image_size, self.image_size)
        return keeps_in_memory(setting, self.num_samples, shape, f"{type(self).__name__} {self.split} items")

    def _keep_in_memory(self) -> None:
        """Render every item once and keep it; batch_transform scales the batches to [-1, 1]."""

        def render(index: int) -> torch.Tensor:
            return torch.stack([stored_image(image, self.channels) for image in self._renderings(index)])

        self.images = stack_items(self.num_samples, render, f"{type(self).__name__} {self.split} items")
        self.batch_transform = BatchAugment(None, random_crop=False, flip=False, channels=self.channels)

    def _renderings(self, index: int) -> list[np.ndarray]:
        """The uint8 H x W x 3 renderings of item ``index``, one per side."""
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self.images is not None:
            images = self.images[self._checked(index)]
        else:
            images = [self._to_tensor(image) for image in self._renderings(index)]
        return dict(zip(self.sides, images, strict=True))

    def __len__(self) -> int:
        return self.num_samples

    def _checked(self, index: int) -> int:
        index = int(index)
        if not 0 <= index < self.num_samples:
            raise IndexError(f"Index {index} is outside the shapes dataset of {self.num_samples} samples.")
        return index

    def _rng(self, index: int, side: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, SPLIT_CODES[self.split], self._checked(index), side])

    def _random_shape(self, kind: str, rng: np.random.Generator) -> dict:
        """Kind, colour, centre and size of one shape, drawn as ShapesDataset draws them."""
        center, size = random_placement(rng, self.image_size)
        return {"kind": kind, "colour": contrasting_colour(rng, BACKGROUND), "center": center, "size": size}

    def _to_tensor(self, image: np.ndarray) -> torch.Tensor:
        return image_tensor(image, self.channels)


class ShapesUnpaired(_ShapesTranslation):
    """Circles (A) and squares (B), drawn independently of each other."""

    kinds: ClassVar[dict[str, str]] = {"A": "circle", "B": "square"}

    def attributes(self, index: int, side: str = "A") -> dict:
        """The ``kind``, ``colour`` (RGB 0-255), ``center`` (x, y in pixels) and ``size`` (pixels) of one side."""
        return self._random_shape(self.kinds[side], self._rng(index, list(self.kinds).index(side)))

    def _renderings(self, index: int) -> list[np.ndarray]:
        return [
            render_shape(image_size=self.image_size, **self.attributes(index, side)) for side in self.sides
        ]

    def judge_translations(self, inputs: torch.Tensor, outputs: torch.Tensor) -> dict[str, float]:
        """This dataset's judge of A images (circles) translated to B: :func:`judge_unpaired`."""
        return judge_unpaired(inputs, outputs, target_kind=self.kinds["B"])


class ShapesPaired(_ShapesTranslation):
    """A shape's outline (A) and the same shape filled (B)."""

    paired = True  # B is the known target of A: translations are scored against it pixel by pixel

    def attributes(self, index: int) -> dict:
        """The ``kind``, ``colour`` (RGB 0-255), ``center`` (x, y in pixels) and ``size`` (pixels) of item ``index``."""
        rng = self._rng(index, 0)
        return self._random_shape(SHAPE_NAMES[int(rng.integers(len(SHAPE_NAMES)))], rng)

    def _renderings(self, index: int) -> list[np.ndarray]:
        shape = self.attributes(index)
        outline_width = OUTLINE_WIDTH_SHARE * self.image_size
        return [
            render_outline(image_size=self.image_size, width=outline_width, **shape),
            render_shape(image_size=self.image_size, **shape),
        ]


def render_outline(
    kind: str,
    image_size: int,
    center: tuple[float, float],
    size: float,
    colour: tuple[int, int, int],
    width: float,
) -> np.ndarray:
    """Draw the ``width``-pixel rim just inside a shape's edge on black, as a uint8 H x W x 3 array.

    The rim is the filled shape minus the shape shrunk by ``width``, so it lies
    exactly within the filled shape that render_shape draws.
    """
    frame = (image_size, image_size)
    rim = shape_coverage(kind, frame, center, size) - shape_coverage(kind, frame, center, size, grow=-width)
    return np.rint(rim[..., np.newaxis] * np.asarray(colour, dtype=np.float64)).astype(np.uint8)


def judge_unpaired(
    inputs: torch.Tensor, outputs: torch.Tensor, target_kind: str = "square"
) -> dict[str, float]:
    """Shares of translations that show ``target_kind`` and keep the input's colour and position.

    Both are ``N x C x H x W`` batches in [-1, 1]; the tolerances are explained
    in the module docstring.  Returns ``shape_correct``, ``colour_kept``,
    ``position_kept`` and ``all_kept`` (all three for the same image).
    """
    if target_kind not in SHAPE_NAMES:
        raise ValueError(f"Unknown target kind {target_kind!r}; expected one of {', '.join(SHAPE_NAMES)}.")
    if inputs.dim() != 4 or inputs.shape != outputs.shape or len(inputs) == 0:
        raise ValueError(
            f"judge_unpaired expects two non-empty N x C x H x W batches of one shape, "
            f"got {tuple(inputs.shape)} and {tuple(outputs.shape)}."
        )
    shape_correct = judge(outputs).numpy() == SHAPE_NAMES.index(target_kind)
    input_colours, input_centroids = foreground_colours_and_centroids(inputs)
    output_colours, output_centroids = foreground_colours_and_centroids(outputs)
    # Images without foreground have NaN measurements, which compare as not kept.
    colour_kept = np.abs(output_colours - input_colours).max(axis=1) <= COLOUR_TOLERANCE
    position_kept = np.linalg.norm(output_centroids - input_centroids, axis=1) <= POSITION_TOLERANCE
    shares = {
        "shape_correct": shape_correct,
        "colour_kept": colour_kept,
        "position_kept": position_kept,
        "all_kept": shape_correct & colour_kept & position_kept,
    }
    return {name: float(kept.mean()) for name, kept in shares.items()}


def foreground_colours_and_centroids(images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per image: the foreground's median colour in [0, 1] (N x C) and centroid as a share of the size (N x 2)."""
    unit_images, distances = foreground_distances(images)
    height, width = unit_images.shape[-2:]
    pixel_centres = np.indices((height, width)) + 0.5
    colours = np.full(unit_images.shape[:2], np.nan)
    centroids = np.full((len(unit_images), 2), np.nan)
    for number, (image, distance) in enumerate(zip(unit_images, distances)):
        foreground = distance > FOREGROUND_MIN_DISTANCE
        if foreground.any():
            core = distance >= np.median(distance[foreground])
            colours[number] = np.median(image[:, core], axis=1)
            rows, columns = pixel_centres[:, foreground].mean(axis=1)
            centroids[number] = (columns / width, rows / height)
    return colours, centroids


def foreground_distances(images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The images scaled to [0, 1], and each pixel's largest channel difference from the border median (N x H x W).

    The border's per-channel median is the background colour, as in
    :func:`gantrain.data.shapes.judge`.
    """
    unit_images = (images.detach().cpu().double().numpy() + 1.0) / 2
    edges = (unit_images[..., 0, :], unit_images[..., -1, :], unit_images[..., :, 0], unit_images[..., :, -1])
    backgrounds = np.median(np.concatenate(edges, axis=-1), axis=-1)
    return unit_images, np.abs(unit_images - backgrounds[..., np.newaxis, np.newaxis]).max(axis=1)


def judge_paired(outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Pixel fidelity of paired translations: ``l1`` in [-1, 1] units and mean per-image ``psnr`` in dB.

    PSNR is computed on images scaled to [0, 1] and capped at PSNR_CAP_DB, so
    a batch with exact matches still has a finite mean.
    """
    if outputs.dim() != 4 or outputs.shape != targets.shape or len(outputs) == 0:
        raise ValueError(
            f"judge_paired expects two non-empty N x C x H x W batches of one shape, "
            f"got {tuple(outputs.shape)} and {tuple(targets.shape)}."
        )
    difference = outputs.detach().double() - targets.detach().double()
    unit_mse = (difference / 2).square().flatten(1).mean(dim=1)
    psnr = (-10 * torch.log10(unit_mse)).clamp(max=PSNR_CAP_DB)
    return {"l1": float(difference.abs().mean()), "psnr": float(psnr.mean())}
