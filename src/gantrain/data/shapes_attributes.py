"""Generated multi-domain data for StarGAN and StarGAN v2: one red, green or blue circle, square or triangle.

ShapesAttributes
    Each image holds one shape of :mod:`gantrain.data.shapes` on black, its
    kind uniform over circle, square and triangle and its colour uniform over
    red, green and blue: a prototype colour (230 in its channel, 25 in the
    others) with each channel moved by a uniform integer in [-25, 25], so
    colours vary a little yet always have one clearly dominant channel.  Size
    and position follow ShapesDataset.  Item ``i`` is drawn from
    ``np.random.default_rng([seed, split code, i, 0])`` alone, so items do not
    depend on the access order and the train and test splits differ.
    ``labels=attributes`` labels each image by two groups of mutually exclusive
    attributes, a multi-hot vector over red, green, blue, circle, square,
    triangle (StarGAN's setting, like CelebA's hair colours); ``labels=domains``
    by one of nine colour-shape domains, red_circle, red_square, ...,
    blue_triangle (StarGAN v2's one domain per image).  ``in_memory`` renders
    every image once, as the translation shapes do.

judge_attributes (colours in [0, 1]; figures from 2,000 test items)
    A good translation shows the target colour and shape at the input's
    position and size.  Shape: :func:`gantrain.data.shapes.judge`'s class.
    The other three are measured on the foreground as in
    :func:`gantrain.data.shapes_translation.judge_unpaired` (pixels whose
    largest channel difference from the border median exceeds 0.15).
    Colour: the core's median colour names its largest channel if that
    exceeds the second largest by at least 0.25.  Dataset colours have
    margins of at least 0.61 (0.59 after a 3x3 blur, 0.62 with Gaussian noise
    of sigma 0.05), while mixes such as yellow, grey or white have none.
    Size: sqrt(area / fill), the area summed over the coverage (each pixel's
    distance from the background over the core's, within the foreground grown
    by one pixel) and the fill the kind's share of its bounding box (the judged
    kind, or the target kind for outputs the shape judge rejects).  It is kept within 10%:
    one size drawn as the three kinds measures within 0.9%, blurred or noisy
    renderings within 5%, while independent sizes agree that closely 27% of
    the time.  Position: the foreground's centroid, moved up by a sixth of the
    size for triangles (whose centroid lies that far below their bounding
    box's centre), kept within 0.05 of the image size as judge_unpaired keeps
    it: one position drawn as the three kinds measures within 0.021, blurred
    within 0.021 and noisy within 0.049 (95% within 0.012), while independent
    positions come that close 7% of the time (size and position: 3%).
"""

from typing import ClassVar

import numpy as np
import torch
from scipy import ndimage

from gantrain.data.shapes import (
    EIGHT_NEIGHBOURS,
    FOREGROUND_MIN_DISTANCE,
    IDEAL_FILL,
    SHAPE_NAMES,
    judge,
    random_placement,
    render_shape,
)
from gantrain.data.shapes_translation import (
    BACKGROUND,
    POSITION_TOLERANCE,
    _ShapesTranslation,
    foreground_colours_and_centroids,
    foreground_distances,
)
from gantrain.errors import DatasetError
from gantrain.options import LabelKind

COLOUR_NAMES: tuple[str, ...] = ("red", "green", "blue")
PROTOTYPE_LEVELS = (230, 25)
"""The dominant channel's and the other channels' levels of a prototype colour."""
COLOUR_JITTER = 25
"""Each channel of a shape's colour moves from its prototype by a uniform integer in [-25, 25]."""
ATTRIBUTE_NAMES: tuple[str, ...] = (*COLOUR_NAMES, *SHAPE_NAMES)
DOMAIN_NAMES: tuple[str, ...] = tuple(f"{colour}_{kind}" for colour in COLOUR_NAMES for kind in SHAPE_NAMES)
# Judge tolerances, explained in the module docstring.
COLOUR_MARGIN = 0.25
SIZE_TOLERANCE = 0.1


def prototype_colour(colour: str) -> tuple[int, int, int]:
    """The RGB prototype (0-255) of a colour name."""
    high, low = PROTOTYPE_LEVELS
    return tuple(high if name == colour else low for name in COLOUR_NAMES)


class ShapesAttributes(_ShapesTranslation):
    """Coloured shapes labelled by colour and kind, as attributes or as one of nine domains.

    ``path`` and ``download`` are accepted and ignored so the shapes share the
    keyword signature of the file-based dataset configs.
    """

    attribute_groups: ClassVar[list[list[str]]] = [list(COLOUR_NAMES), list(SHAPE_NAMES)]

    def __init__(
        self,
        path: str | None = None,
        image_size: int = 32,
        channels: int = 3,
        download: bool = False,
        split: str = "train",
        num_samples: int = 20000,
        seed: int = 0,
        labels: LabelKind | str = LabelKind.attributes,
        in_memory: bool | str = False,
    ) -> None:
        super().__init__(path, image_size, channels, download, split, num_samples, seed, in_memory=False)
        if channels != 3:
            raise DatasetError(
                f"The coloured shapes are labelled by their colour, so they need dataset.channels=3, got {channels}."
            )
        valid = [kind.value for kind in LabelKind]
        if labels not in valid:
            raise DatasetError(
                f"dataset.labels={labels!r} is not supported; use dataset.labels={' or '.join(valid)}."
            )
        self.labels = LabelKind(labels)
        self.multi_label = self.labels is LabelKind.attributes
        self.label_names = list(ATTRIBUTE_NAMES if self.multi_label else DOMAIN_NAMES)
        self.label_groups = [list(group) for group in self.attribute_groups] if self.multi_label else []
        self._domain_indices: list[list[int]] | None = None
        if self._keeps_in_memory(in_memory):
            self._keep_in_memory()  # here rather than in the base class: rendering needs the checks above

    def attributes(self, index: int) -> dict:
        """The ``kind``, ``colour_name``, ``colour`` (RGB 0-255), ``center`` (x, y in pixels) and ``size`` (pixels)."""
        rng = self._rng(index, 0)
        kind, colour_name = self._kind_and_colour(rng)
        jitter = rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, size=3)
        colour = tuple(int(value) for value in np.clip(np.add(prototype_colour(colour_name), jitter), 0, 255))
        center, size = random_placement(rng, self.image_size)
        return {"kind": kind, "colour_name": colour_name, "colour": colour, "center": center, "size": size}

    def render(self, attributes: dict) -> torch.Tensor:
        """Draw a shape given as :meth:`attributes` describes it (``colour_name`` is ignored), in [-1, 1]."""
        shape = {key: attributes[key] for key in ("kind", "colour", "center", "size")}
        return self._to_tensor(render_shape(image_size=self.image_size, background=BACKGROUND, **shape))

    def label_of(self, colour: str, kind: str) -> torch.Tensor | int:
        """The label of a ``colour`` ``kind`` shape: a multi-hot float vector, or a domain index."""
        if colour not in COLOUR_NAMES or kind not in SHAPE_NAMES:
            raise ValueError(
                f"Unknown colour or shape {colour!r}, {kind!r}; expected one of {', '.join(COLOUR_NAMES)} "
                f"and one of {', '.join(SHAPE_NAMES)}."
            )
        if not self.multi_label:
            return DOMAIN_NAMES.index(f"{colour}_{kind}")
        label = torch.zeros(len(ATTRIBUTE_NAMES))
        label[[ATTRIBUTE_NAMES.index(colour), ATTRIBUTE_NAMES.index(kind)]] = 1.0
        return label

    def colour_and_kind(self, label: torch.Tensor | int) -> tuple[str, str]:
        """The colour and shape named by a label of this dataset (a multi-hot vector or a domain index)."""
        if not self.multi_label:
            colour, kind = DOMAIN_NAMES[int(label)].split("_")
            return colour, kind
        names = [ATTRIBUTE_NAMES[i] for i in torch.as_tensor(label).nonzero().flatten().tolist()]
        return next(n for n in names if n in COLOUR_NAMES), next(n for n in names if n in SHAPE_NAMES)

    def one_attribute_changes(self, count: int) -> list[tuple[int, torch.Tensor | int]]:
        """(item, target label) for each change of one attribute (the colour or the shape) of the first
        ``count`` items: the translations that the judge scores."""
        changes = []
        for item in range(min(count, len(self))):
            shape = self.attributes(item)
            colour, kind = shape["colour_name"], shape["kind"]
            changes += [(item, self.label_of(other, kind)) for other in COLOUR_NAMES if other != colour]
            changes += [(item, self.label_of(colour, other)) for other in SHAPE_NAMES if other != kind]
        return changes

    def judge_label_changes(
        self, inputs: torch.Tensor, outputs: torch.Tensor, target_labels: torch.Tensor
    ) -> dict[str, float]:
        """This dataset's judge of images translated to target labels: :func:`judge_attributes`."""
        colours, kinds = zip(*(self.colour_and_kind(label) for label in target_labels), strict=True)
        return judge_attributes(inputs, outputs, list(colours), list(kinds))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor | int]:
        if self.images is not None:
            kind, colour = self._kind_and_colour(self._rng(index, 0))  # the label without the rendering
            return self.images[index, 0], self.label_of(colour, kind)
        attributes = self.attributes(index)
        return self.render(attributes), self.label_of(attributes["colour_name"], attributes["kind"])

    def _renderings(self, index: int) -> list[np.ndarray]:
        shape = {key: value for key, value in self.attributes(index).items() if key != "colour_name"}
        return [render_shape(image_size=self.image_size, background=BACKGROUND, **shape)]

    def domain_indices(self) -> list[list[int]]:
        """For each of the nine domains, the indices of its items (from the draws alone, nothing is rendered)."""
        if self.multi_label:
            raise DatasetError(
                "Domain indices need one domain per image; use dataset.labels=domains (dataset=shapes_domains)."
            )
        if self._domain_indices is None:
            self._domain_indices = [[] for _ in DOMAIN_NAMES]
            for index in range(self.num_samples):
                kind, colour = self._kind_and_colour(self._rng(index, 0))
                self._domain_indices[DOMAIN_NAMES.index(f"{colour}_{kind}")].append(index)
        return [list(indices) for indices in self._domain_indices]

    @staticmethod
    def _kind_and_colour(rng: np.random.Generator) -> tuple[str, str]:
        """The first two draws of an item, so domain_indices need not draw the rest."""
        return SHAPE_NAMES[int(rng.integers(len(SHAPE_NAMES)))], COLOUR_NAMES[
            int(rng.integers(len(COLOUR_NAMES)))
        ]


def judge_attributes(
    inputs: torch.Tensor, outputs: torch.Tensor, target_colours: list[str], target_shapes: list[str]
) -> dict[str, float]:
    """Shares of translations that show their target colour and shape and keep the input's position and size.

    ``inputs`` and ``outputs`` are ``N x 3 x H x W`` batches in [-1, 1] and
    the targets name one colour and one shape per image; the tolerances are
    explained in the module docstring.  Returns ``shape_correct``,
    ``colour_correct``, ``position_kept``, ``size_kept`` and ``all_kept``
    (all four for the same image).
    """
    if inputs.dim() != 4 or inputs.shape != outputs.shape or len(inputs) == 0 or inputs.shape[1] != 3:
        raise ValueError(
            f"judge_attributes expects two non-empty N x 3 x H x W batches of one shape, "
            f"got {tuple(inputs.shape)} and {tuple(outputs.shape)}."
        )
    if len(target_colours) != len(inputs) or len(target_shapes) != len(inputs):
        raise ValueError(
            f"judge_attributes needs one target colour and shape per image: {len(inputs)} images, "
            f"{len(target_colours)} colours and {len(target_shapes)} shapes."
        )
    unknown = sorted(set(target_colours) - set(COLOUR_NAMES)) + sorted(set(target_shapes) - set(SHAPE_NAMES))
    if unknown:
        raise ValueError(
            f"Unknown target {', '.join(map(repr, unknown))}; colours are {', '.join(COLOUR_NAMES)} and "
            f"shapes {', '.join(SHAPE_NAMES)}."
        )
    target_kinds = np.array([SHAPE_NAMES.index(kind) for kind in target_shapes])
    output_kinds = judge(outputs).numpy()
    shape_correct = output_kinds == target_kinds
    _, input_centres, input_sizes = _measure(inputs, judge(inputs).numpy())
    # A valid shape of the wrong kind is measured as what it is, so only shape_correct counts the mistake.
    output_colours, output_centres, output_sizes = _measure(
        outputs, np.where(output_kinds >= 0, output_kinds, target_kinds)
    )
    # Images without foreground (or inputs of no valid kind) have NaN measurements, which compare as not kept.
    colour_correct = np.array(
        [name == target for name, target in zip(colour_names(output_colours), target_colours, strict=True)]
    )
    position_kept = np.linalg.norm(output_centres - input_centres, axis=1) <= POSITION_TOLERANCE
    size_kept = np.abs(output_sizes / input_sizes - 1) <= SIZE_TOLERANCE
    shares = {
        "shape_correct": shape_correct,
        "colour_correct": colour_correct,
        "position_kept": position_kept,
        "size_kept": size_kept,
        "all_kept": shape_correct & colour_correct & position_kept & size_kept,
    }
    return {name: float(kept.mean()) for name, kept in shares.items()}


def colour_names(colours: np.ndarray) -> list[str | None]:
    """The name of each ``N x 3`` colour in [0, 1] by its dominant channel, None if none dominates clearly."""
    names = []
    for colour in colours:
        second, first = np.sort(colour)[-2:] if not np.isnan(colour).any() else (0.0, 0.0)
        names.append(COLOUR_NAMES[int(np.argmax(colour))] if first - second >= COLOUR_MARGIN else None)
    return names


def _measure(images: torch.Tensor, kinds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per image: core colour (N x 3), bounding-box centre (N x 2) and size (N), as shares of the image size.

    ``kinds`` (indices into SHAPE_NAMES, -1 unknown) says which fill turns the
    area into a size and whether the centroid sits below the centre.
    """
    colours, centroids = foreground_colours_and_centroids(images)
    _, distances = foreground_distances(images)
    sizes = np.full(len(images), np.nan)
    for number, (distance, kind) in enumerate(zip(distances, kinds, strict=True)):
        foreground = distance > FOREGROUND_MIN_DISTANCE
        if kind < 0 or not foreground.any():
            continue
        core = distance >= np.median(distance[foreground])
        coverage = np.clip(distance / np.median(distance[core]), 0.0, 1.0)
        area = coverage[ndimage.binary_dilation(foreground, structure=EIGHT_NEIGHBOURS)].sum() / distance.size
        sizes[number] = np.sqrt(area / IDEAL_FILL[SHAPE_NAMES[kind]])
    centres = centroids.copy()
    centres[:, 1] -= np.where(kinds == SHAPE_NAMES.index("triangle"), sizes / 6, 0.0)
    return colours, centres, sizes
