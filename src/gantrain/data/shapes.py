"""The "shapes" dataset: one filled circle, square or triangle per image, generated on the fly.

It needs no files and no download, and a geometric :func:`judge` tells for any
image whether it shows one valid shape and which one, so a generator's sample
quality (share of valid shapes) and mode coverage (how many of the three kinds
it draws) can be measured without a pretrained classifier.

Rendering
    Each image holds one uniformly coloured shape on a plain background: a
    circle, an axis-aligned square, or an isosceles triangle pointing up whose
    base equals its height (so every shape has a square bounding box, and the
    shapes differ in how much of it they fill: square 1, circle pi/4, triangle
    1/2).  Side or diameter is uniform in [0.35, 0.75] of the image size, the
    position is uniform such that the shape stays inside the frame, and the
    colour is a random saturated, bright hue whose luminance differs from the
    background's by at least 0.3, so the shape stands out in grayscale too.
    Edges are anti-aliased over one pixel.  Item ``index`` of seed ``seed`` is
    drawn from ``np.random.default_rng([seed, index])`` alone.  With
    ``in_memory`` every item is rendered once, at construction, and kept
    (:func:`stored_image`); ``batch_transform`` scales the batches to [-1, 1].

Judge (per image, colours scaled to [0, 1])
    1. Background colour: per-channel median of the border pixels.
    2. Foreground: pixels whose largest channel difference from the background
       exceeds 0.15.  None: invalid.
    3. Connected components (8-neighbourhood): the largest must hold at least
       95% of the foreground pixels, otherwise there are stray blobs or
       several shapes; holes inside it may cover at most 2% of its pixels
       (the shapes are solid, a ring is not).  It may reach at most 2 of the
       image's outermost pixels (a tip; the dataset keeps every shape 2 px off
       them): a shape cut by the border is not a whole shape.
    4. Shape colour: median over the component's core, i.e. the pixels at least
       half as far from the background as the component's median, eroded by one
       pixel so anti-aliased or blurry edges do not count.  The core's largest
       per-channel standard deviation must stay within 0.08 (uniform fill).
    5. Coverage: every pixel of the component grown by one pixel is projected
       onto the background-to-shape colour line, giving its covered fraction
       (0 background, 1 shape).  Sums of coverage measure the shape at
       sub-pixel precision: area = total, width = largest row sum, height =
       largest column sum.
    6. Size: area within [0.04, 0.7] of the image (the dataset spans about
       0.06 to 0.56) and width / height within [1/1.2, 1.2].
    7. Class: fill ratio area / (width * height), width / height and skewness of
       the coverage's row positions (0 for the up-down symmetric circle and
       square, -0.57 for the triangle, whose mass sits low) must fall in one
       class's bands: circle fill [0.74, 0.85], square [0.95, 1.05], triangle
       [0.40, 0.80]; width / height within 1.08 (either way) for circle and
       square, 1.2 for the triangle (whose anti-aliased base row reads up to
       1.19 at 16 px); skewness [-0.2, 0.2] for circle and square,
       [-0.8, -0.35] for the triangle.  Anything else is invalid.  The bands
       hold every clean rendering at 16 to 128 px and the rendering blurred
       (sigma 0.7 px, from 32 px) or noised (sigma 0.05); they reject the near
       misses a generator draws: a square whose corners are rounded to a
       radius of a quarter of its side (fill 0.947), an ellipse 1.1 times as
       wide as high (width / height 1.096 at 16 px).  The triangle's band
       reaches 0.80 for the smallest triangles at 16 px (6 px tall, fill 0.78).
    8. Outline: the ideal shape of that class with the measured area and
       centroid is drawn; coverage outside its outline grown by half a pixel,
       plus coverage missing inside its outline shrunk by half a pixel, must
       stay within 10% of the area.  This rejects blobs that only share the
       class's fill ratio, such as two overlapping shapes.
    9. Sharp edges: the pixels of partial coverage (0.1 to 0.9) divided by the
       ideal outline's perimeter is the edge's mean width; it may be at most
       3 px.  The renderer's anti-aliased edge measures 0.5 to 1.0 px, the
       rendering blurred with sigma 0.7 px about 2, sigma 1.0 px 2.3 to 2.9,
       sigma 1.5 px 3.3 to 3.9 at every size: a blurred shape is a near miss.
"""

import colorsys
from typing import ClassVar

import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import Dataset

from gantrain.data.in_memory import BatchAugment, keeps_in_memory, stack_items
from gantrain.errors import DatasetError

SHAPE_NAMES: tuple[str, ...] = ("circle", "square", "triangle")

MIN_IMAGE_SIZE = 16
SIZE_RANGE = (0.35, 0.75)
"""Side or diameter as a share of the image size; even at 32 px the smallest shape spans 11 px."""
SATURATION_RANGE = (0.5, 1.0)
VALUE_RANGE = (0.6, 1.0)
MIN_LUMINANCE_CONTRAST = 0.3
"""Least luminance difference (in [0, 1]) between shape and background, so grayscale images keep the shape."""
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])
"""ITU-R 601 luma, the weights PIL's grayscale conversion uses for the file-based datasets."""

# Judge tolerances (colours in [0, 1]), each explained in the module docstring.
FOREGROUND_MIN_DISTANCE = 0.15
LARGEST_COMPONENT_MIN_SHARE = 0.95
MAX_HOLE_SHARE = 0.02
MAX_BORDER_PIXELS = 2
CORE_MAX_SPREAD = 0.08
AREA_SHARE_RANGE = (0.04, 0.7)
MAX_ASPECT = 1.2
FILL_RANGES = {"circle": (0.74, 0.85), "square": (0.95, 1.05), "triangle": (0.40, 0.80)}
CLASS_MAX_ASPECT = {"circle": 1.08, "square": 1.08, "triangle": MAX_ASPECT}
SKEWNESS_RANGES = {"circle": (-0.2, 0.2), "square": (-0.2, 0.2), "triangle": (-0.8, -0.35)}
IDEAL_FILL = {"circle": np.pi / 4, "square": 1.0, "triangle": 0.5}
OUTLINE_TOLERANCE = 0.5
MAX_OUTLINE_MISMATCH = 0.1
PARTIAL_COVERAGE = (0.1, 0.9)
MAX_EDGE_WIDTH = 3.0
PERIMETER_PER_SQRT_AREA = {"circle": 2 * np.sqrt(np.pi), "square": 4.0, "triangle": (1 + np.sqrt(5)) * np.sqrt(2)}
"""Perimeter / sqrt(area) of each ideal shape (the triangle: base s, height s, two sides s * sqrt(5) / 2)."""
EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)


def render_shape(
    kind: str,
    image_size: int,
    center: tuple[float, float],
    size: float,
    colour: tuple[int, int, int],
    background: tuple[int, int, int] = (0, 0, 0),
) -> np.ndarray:
    """Draw one filled shape as a uint8 ``image_size x image_size x 3`` array.

    ``center`` is ``(x, y)`` in pixels with the image spanning [0, image_size]
    and y pointing down; ``size`` is the side or diameter in pixels.
    """
    coverage = shape_coverage(kind, (image_size, image_size), center, size)[..., np.newaxis]
    background_rgb = np.asarray(background, dtype=np.float64)
    image = background_rgb + coverage * (np.asarray(colour, dtype=np.float64) - background_rgb)
    return np.rint(image).astype(np.uint8)


def shape_coverage(
    kind: str, frame: tuple[int, int], center: tuple[float, float], size: float, grow: float = 0.0
) -> np.ndarray:
    """Share of each pixel of a ``(height, width)`` frame that the shape covers.

    Coverage falls off linearly over one pixel across the edge, taken from the
    shape's (approximate) signed distance: anti-aliasing without supersampling.
    ``grow`` moves every edge outwards by that many pixels (inwards if negative).
    """
    dx = np.arange(frame[1])[np.newaxis, :] + 0.5 - center[0]
    dy = np.arange(frame[0])[:, np.newaxis] + 0.5 - center[1]
    half = size / 2
    if kind == "circle":
        signed_distance = np.hypot(dx, dy) - half
    elif kind == "square":
        signed_distance = np.maximum(np.abs(dx), np.abs(dy)) - half
    elif kind == "triangle":
        slanted_sides = (2 * np.abs(dx) - (dy + half)) / np.sqrt(5)
        signed_distance = np.maximum(slanted_sides, dy - half)
    else:
        raise ValueError(f"Unknown shape kind {kind!r}; expected one of {', '.join(SHAPE_NAMES)}.")
    return np.clip(0.5 + grow - signed_distance, 0.0, 1.0)


class ShapesDataset(Dataset):
    """Generated circles, squares and triangles; item ``i`` depends only on ``(seed, i)``.

    ``path`` and ``download`` are accepted and ignored so the shapes share the
    keyword signature of the file-based dataset configs.
    """

    classes: ClassVar[list[str]] = list(SHAPE_NAMES)

    @staticmethod
    def judge_samples(images: torch.Tensor) -> dict[str, float]:
        """This dataset's judge of generated images: :func:`judge_summary`."""
        return judge_summary(images)

    def __init__(
        self,
        image_size: int = 32,
        num_samples: int = 60000,
        seed: int = 0,
        channels: int = 3,
        path: str | None = None,
        download: bool = False,
        background: tuple[int, int, int] = (0, 0, 0),
        in_memory: bool | str = False,
    ) -> None:
        if image_size < MIN_IMAGE_SIZE:
            raise DatasetError(f"The shapes dataset needs image_size >= {MIN_IMAGE_SIZE}, got {image_size}.")
        if num_samples < 1:
            raise DatasetError(f"The shapes dataset needs num_samples >= 1, got {num_samples}.")
        if channels not in (1, 3):
            raise DatasetError(f"The shapes dataset has 1 (grayscale) or 3 (RGB) channels, got {channels}.")
        if len(background) != 3 or not all(0 <= value <= 255 for value in background):
            raise DatasetError(f"The shapes background must be three values in 0..255, got {background}.")
        self.image_size = image_size
        self.num_samples = num_samples
        self.seed = seed
        self.channels = channels
        self.background = tuple(int(value) for value in background)
        self.images: torch.Tensor | None = None
        self.batch_transform: BatchAugment | None = None
        if keeps_in_memory(in_memory, num_samples, (channels, image_size, image_size), "shapes"):
            labels = [0] * num_samples

            def render(index: int) -> torch.Tensor:
                image, labels[index] = self._render(index)
                return stored_image(image, channels)

            self.images = stack_items(num_samples, render, "shapes")
            self.image_labels = labels
            self.batch_transform = BatchAugment(None, random_crop=False, flip=False, channels=channels)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        index = int(index)
        if not 0 <= index < self.num_samples:
            raise IndexError(f"Index {index} is outside the shapes dataset of {self.num_samples} samples.")
        if self.images is not None:
            return self.images[index], self.image_labels[index]
        image, label = self._render(index)
        return image_tensor(image, self.channels), label

    def _render(self, index: int) -> tuple[np.ndarray, int]:
        """Item ``index`` as a uint8 H x W x 3 rendering and its label."""
        rng = np.random.default_rng([self.seed, index])
        label = int(rng.integers(len(SHAPE_NAMES)))
        center, size = random_placement(rng, self.image_size)
        colour = contrasting_colour(rng, self.background)
        return render_shape(SHAPE_NAMES[label], self.image_size, center, size, colour, self.background), label


def random_placement(rng: np.random.Generator, image_size: int) -> tuple[tuple[float, float], float]:
    """(centre, size) of a shape: size uniform in SIZE_RANGE, centre such that the shape stays inside."""
    size = rng.uniform(*SIZE_RANGE) * image_size
    margin = size / 2 + 2  # keeps the anti-aliased edge, widest at the triangle's tips, off the border
    far_edge = image_size - margin
    return (rng.uniform(margin, far_edge), rng.uniform(margin, far_edge)), size


def image_tensor(image: np.ndarray, channels: int) -> torch.Tensor:
    """A uint8 H x W x 3 rendering as a channels x H x W float32 tensor in [-1, 1] (1 channel: luma)."""
    if channels == 1:
        image = (image @ LUMA_WEIGHTS)[..., np.newaxis]
    pixels = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)
    return torch.from_numpy(pixels / np.float32(127.5) - np.float32(1.0))


def stored_image(image: np.ndarray, channels: int) -> torch.Tensor:
    """What the in-memory shapes keep of a uint8 H x W x 3 rendering.

    RGB: the uint8 ``3 x H x W`` pixels, which BatchAugment's ``x / 127.5 - 1``
    turns into exactly :func:`image_tensor`'s values.  One channel:
    image_tensor's float32 itself, because luma (0.299 R + 0.587 G + 0.114 B)
    falls between the 256 levels and uint8 would round it.
    """
    if channels == 1:
        return image_tensor(image, channels)
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def contrasting_colour(rng: np.random.Generator, background: tuple[int, int, int]) -> tuple[int, int, int]:
    """A random saturated, bright colour, redrawn until its luminance clearly differs from the background."""
    background_luminance = float(np.dot(LUMA_WEIGHTS, background)) / 255
    while True:
        hsv = (rng.uniform(), rng.uniform(*SATURATION_RANGE), rng.uniform(*VALUE_RANGE))
        rgb = np.array(colorsys.hsv_to_rgb(*hsv))
        if abs(float(np.dot(LUMA_WEIGHTS, rgb)) - background_luminance) >= MIN_LUMINANCE_CONTRAST:
            return tuple(int(value) for value in np.rint(rgb * 255))


def judge(images: torch.Tensor) -> torch.Tensor:
    """Label each ``N x C x H x W`` image in [-1, 1]: index into SHAPE_NAMES, or -1 if no single valid shape.

    The rule is described in the module docstring.
    """
    if images.dim() != 4:
        raise ValueError(f"judge expects an N x C x H x W batch, got shape {tuple(images.shape)}.")
    unit_images = (images.detach().cpu().double().numpy() + 1.0) / 2
    edges = (unit_images[..., 0, :], unit_images[..., -1, :], unit_images[..., :, 0], unit_images[..., :, -1])
    borders = np.concatenate(edges, axis=-1)
    offsets = unit_images - np.median(borders, axis=-1)[..., np.newaxis, np.newaxis]
    labels = [_judge_one(offset) for offset in offsets]
    return torch.tensor(labels, dtype=torch.long)


def judge_summary(images: torch.Tensor) -> dict[str, float]:
    """Share of valid images, share of the three classes they cover, and each class's share of all images."""
    labels = judge(images)
    if len(labels) == 0:
        raise ValueError("judge_summary needs at least one image.")
    valid = labels[labels >= 0]
    summary = {
        "valid_share": len(valid) / len(labels),
        "coverage": len(torch.unique(valid)) / len(SHAPE_NAMES),
    }
    for label, name in enumerate(SHAPE_NAMES):
        summary[f"share_{name}"] = float((labels == label).sum()) / len(labels)
    return summary


def _judge_one(offset: np.ndarray) -> int:
    """Apply the module's geometric rule to one ``C x H x W`` image given as colour minus background."""
    distance = np.abs(offset).max(axis=0)

    foreground = distance > FOREGROUND_MIN_DISTANCE
    components, count = ndimage.label(foreground, structure=EIGHT_NEIGHBOURS)
    if count == 0:
        return -1
    component_sizes = np.bincount(components.ravel())[1:]
    if component_sizes.max() < LARGEST_COMPONENT_MIN_SHARE * component_sizes.sum():
        return -1
    shape = components == 1 + component_sizes.argmax()
    if shape.sum() - shape[1:-1, 1:-1].sum() > MAX_BORDER_PIXELS:
        return -1
    holes = ndimage.binary_fill_holes(shape) & ~shape
    if holes.sum() > MAX_HOLE_SHARE * shape.sum():
        return -1

    body = shape & (distance > np.median(distance[shape]) / 2)
    core = ndimage.binary_erosion(body, structure=EIGHT_NEIGHBOURS)
    if not core.any():
        return -1
    core_pixels = offset[:, core]
    if core_pixels.std(axis=1).max() > CORE_MAX_SPREAD:
        return -1

    shape_offset = np.median(core_pixels, axis=1)
    coverage = np.einsum("c,chw->hw", shape_offset, offset) / np.dot(shape_offset, shape_offset)
    coverage *= ndimage.binary_dilation(shape, structure=EIGHT_NEIGHBOURS)
    row_sums = coverage.sum(axis=1)
    area = row_sums.sum()
    width = row_sums.max()
    height = coverage.sum(axis=0).max()
    if not AREA_SHARE_RANGE[0] <= area / coverage.size <= AREA_SHARE_RANGE[1]:
        return -1
    if not 1 / MAX_ASPECT <= width / height <= MAX_ASPECT:
        return -1

    fill = area / (width * height)
    aspect = max(width / height, height / width)
    skewness = _vertical_skewness(row_sums)
    for label, name in enumerate(SHAPE_NAMES):
        fill_low, fill_high = FILL_RANGES[name]
        skewness_low, skewness_high = SKEWNESS_RANGES[name]
        in_bands = fill_low <= fill <= fill_high and aspect <= CLASS_MAX_ASPECT[name]
        if in_bands and skewness_low <= skewness <= skewness_high:
            whole = _outline_mismatch(name, coverage) <= MAX_OUTLINE_MISMATCH
            return label if whole and _edge_width(name, coverage) <= MAX_EDGE_WIDTH else -1
    return -1


def _edge_width(kind: str, coverage: np.ndarray) -> float:
    """Mean width in pixels of the edge's ramp from background to shape: partial pixels per pixel of outline."""
    partial = np.count_nonzero((coverage > PARTIAL_COVERAGE[0]) & (coverage < PARTIAL_COVERAGE[1]))
    return float(partial / (PERIMETER_PER_SQRT_AREA[kind] * np.sqrt(coverage.sum())))


def _vertical_skewness(row_sums: np.ndarray) -> float:
    """Skewness of the coverage's row positions: 0 for up-down symmetric shapes, below 0 if mass sits low."""
    weights = row_sums / row_sums.sum()
    rows = np.arange(len(row_sums))
    deviations = rows - np.dot(weights, rows)
    variance = np.dot(weights, deviations**2)
    return float(np.dot(weights, deviations**3) / variance**1.5)


def _outline_mismatch(kind: str, coverage: np.ndarray) -> float:
    """Coverage outside the ideal shape's outline give or take a tolerance band, as a share of the area.

    The ideal shape has the measured area and centroid (sums over all covered
    pixels, so unlike the bounding box they stay exact at small sizes; the
    triangle's centroid lies a sixth of its height below its centre).  Only
    coverage beyond the outline grown by the tolerance, or missing within the
    outline shrunk by it, counts, so blurry edges and pixel rounding do not.
    """
    area = coverage.sum()
    size = np.sqrt(area / IDEAL_FILL[kind])
    rows, columns = np.indices(coverage.shape) + 0.5
    centre = (
        np.sum(coverage * columns) / area,
        np.sum(coverage * rows) / area - (size / 6 if kind == "triangle" else 0.0),
    )
    outer = shape_coverage(kind, coverage.shape, centre, size, grow=OUTLINE_TOLERANCE)
    inner = shape_coverage(kind, coverage.shape, centre, size, grow=-OUTLINE_TOLERANCE)
    clipped = np.clip(coverage, 0.0, 1.0)
    excess = np.clip(clipped - outer, 0.0, None).sum()
    shortfall = np.clip(inner - clipped, 0.0, None).sum()
    return float((excess + shortfall) / area)
