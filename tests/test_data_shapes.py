"""The generated shapes dataset and the geometric judge that scores GAN samples against it."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from gantrain.data.shapes import SHAPE_NAMES, ShapesDataset, judge, judge_summary, render_shape
from gantrain.errors import DatasetError

CIRCLE, SQUARE, TRIANGLE = range(3)
RED, GREEN = (230, 40, 40), (40, 220, 60)


def batch(dataset: ShapesDataset, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    items = [dataset[index] for index in range(count)]
    return torch.stack([image for image, _ in items]), torch.tensor([label for _, label in items])


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """A uint8 H x W x 3 rendering as a 1 x 3 x H x W batch in [-1, 1]."""
    return torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1).unsqueeze(0) / 127.5 - 1


def shape_image(kind: str, image_size: int = 32, colour=RED) -> torch.Tensor:
    middle = (image_size / 2, image_size / 2)
    return to_tensor(render_shape(kind, image_size, middle, 0.55 * image_size, colour))


def test_same_seed_and_index_give_identical_images():
    first, second = ShapesDataset(seed=7), ShapesDataset(seed=7)
    for index in (0, 1, 59999):
        image_a, label_a = first[index]
        image_b, label_b = second[index]
        assert torch.equal(image_a, image_b)
        assert label_a == label_b


def test_items_do_not_depend_on_access_order():
    dataset = ShapesDataset(seed=3)
    late_first = dataset[12][0].clone()
    for index in range(12):
        dataset[index]
    assert torch.equal(dataset[12][0], late_first)


def test_different_seeds_give_different_images():
    images_a, _ = batch(ShapesDataset(seed=0), 8)
    images_b, _ = batch(ShapesDataset(seed=1), 8)
    assert not any(torch.equal(a, b) for a, b in zip(images_a, images_b))


@pytest.mark.parametrize("image_size", [32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_items_are_float_images_in_range_with_shape_on_black(image_size, channels):
    dataset = ShapesDataset(image_size=image_size, num_samples=10, channels=channels)
    assert len(dataset) == 10
    for index in range(10):
        image, label = dataset[index]
        assert image.dtype == torch.float32
        assert image.shape == (channels, image_size, image_size)
        assert image.min() == -1.0 and image.max() <= 1.0
        assert image.max() > -0.4  # luminance contrast of at least 0.3 of the range
        assert label in range(len(SHAPE_NAMES))


def test_shapes_stay_inside_the_frame():
    images, _ = batch(ShapesDataset(image_size=32), 200)
    border = torch.cat([images[..., 0, :], images[..., -1, :], images[..., :, 0], images[..., :, -1]], dim=-1)
    assert torch.all(border == -1.0)


def test_grayscale_is_the_luminance_of_the_colour_image():
    colour, colour_labels = batch(ShapesDataset(channels=3, seed=4), 20)
    gray, gray_labels = batch(ShapesDataset(channels=1, seed=4), 20)
    luminance = torch.einsum("c,nchw->nhw", torch.tensor([0.299, 0.587, 0.114]), colour).unsqueeze(1)
    assert torch.equal(colour_labels, gray_labels)
    assert torch.allclose(gray, luminance, atol=1e-5)


def test_labels_cover_all_classes_evenly():
    _, labels = batch(ShapesDataset(seed=11), 600)
    counts = torch.bincount(labels, minlength=3)
    assert all(150 <= count <= 250 for count in counts.tolist())
    assert ShapesDataset.classes == list(SHAPE_NAMES) == ["circle", "square", "triangle"]


def test_shape_colour_is_uniform_and_contrasts_with_a_custom_background():
    dataset = ShapesDataset(image_size=64, background=(255, 255, 255), channels=1)
    for index in range(20):
        image, _ = dataset[index]
        shape_pixels = image[image < 1.0]
        shape_colour = shape_pixels.min()
        assert image[0, 0, 0] == 1.0
        assert 1.0 - shape_colour >= 0.6  # a luminance contrast of at least 0.3
        assert (shape_pixels == shape_colour).float().mean() > 0.7  # the rest are anti-aliased edge pixels


@pytest.mark.parametrize(("kind", "fill"), [("circle", np.pi / 4), ("square", 1.0), ("triangle", 0.5)])
def test_render_shape_fills_its_square_bounding_box_as_expected(kind, fill):
    side = 60.0
    image = render_shape(kind, 128, (64.0, 64.0), side, (255, 255, 255))
    coverage = image[..., 0] / 255
    rows, columns = np.nonzero(coverage > 0.5)
    assert rows.max() - rows.min() + 1 == pytest.approx(side, abs=1)
    assert columns.max() - columns.min() + 1 == pytest.approx(side, abs=1)
    assert coverage.sum() == pytest.approx(fill * side**2, rel=0.01)
    assert np.all(image[..., 0] == image[..., 1])


def test_triangle_points_up():
    coverage = render_shape("triangle", 64, (32.0, 32.0), 40.0, (255, 255, 255))[..., 0] / 255
    assert coverage[:32].sum() < coverage[32:].sum() / 2


def test_render_shape_rejects_unknown_kind():
    with pytest.raises(ValueError, match="hexagon"):
        render_shape("hexagon", 32, (16.0, 16.0), 10.0, RED)


def test_dataset_rejects_unusable_settings_and_ignores_path_and_download():
    with pytest.raises(DatasetError):
        ShapesDataset(image_size=8)
    with pytest.raises(DatasetError):
        ShapesDataset(channels=2)
    with pytest.raises(DatasetError):
        ShapesDataset(num_samples=0)
    dataset = ShapesDataset(num_samples=5, path="/does/not/exist", download=True)
    assert torch.equal(dataset[4][0], ShapesDataset(num_samples=5)[4][0])
    with pytest.raises(IndexError):
        dataset[5]


@pytest.mark.parametrize(("image_size", "count"), [(32, 600), (64, 200), (128, 60)])
@pytest.mark.parametrize("channels", [1, 3])
def test_judge_labels_rendered_ground_truth_correctly(image_size, count, channels):
    images, labels = batch(ShapesDataset(image_size=image_size, seed=21, channels=channels), count)
    assert torch.equal(judge(images), labels)


def test_judge_works_on_another_background():
    images, labels = batch(ShapesDataset(background=(255, 255, 255), seed=5), 200)
    assert torch.equal(judge(images), labels)


def test_judge_accepts_lightly_noised_and_slightly_blurred_shapes():
    images, labels = batch(ShapesDataset(seed=2), 200)
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(0))
    noised = (images + 0.05 * noise).clamp(-1, 1)
    blurred = torch.from_numpy(ndimage.gaussian_filter(images.numpy(), sigma=(0, 0, 0.7, 0.7)))
    assert torch.equal(judge(noised), labels)
    assert torch.equal(judge(blurred), labels)


def test_judge_rejects_noise_blank_and_flat_images():
    generator = torch.Generator().manual_seed(1)
    uniform_noise = torch.rand((8, 3, 32, 32), generator=generator) * 2 - 1
    blank = -torch.ones((1, 3, 32, 32))
    grey = torch.zeros((1, 3, 32, 32))
    assert torch.all(judge(torch.cat([uniform_noise, blank, grey])) == -1)


def test_judge_rejects_heavily_noised_shapes():
    images, _ = batch(ShapesDataset(seed=8), 50)
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(2))
    noised = (images + 0.5 * noise).clamp(-1, 1)
    assert torch.all(judge(noised) == -1)


def test_judge_rejects_two_shapes_in_one_image():
    left = render_shape("circle", 32, (8.0, 10.0), 11.0, RED)
    right = render_shape("square", 32, (23.0, 20.0), 12.0, GREEN)
    same_colour = render_shape("square", 32, (23.0, 20.0), 12.0, RED)
    images = torch.cat([to_tensor(np.maximum(left, right)), to_tensor(np.maximum(left, same_colour))])
    assert torch.all(judge(images) == -1)
    assert judge(to_tensor(left)).item() == CIRCLE


def test_judge_rejects_smears_and_shapes_outside_the_set():
    images = torch.cat([shape_image(kind, 64) for kind in SHAPE_NAMES])
    smeared = torch.from_numpy(ndimage.gaussian_filter(images.numpy(), sigma=(0, 0, 4, 4)))
    streaked = torch.from_numpy(ndimage.uniform_filter1d(images.numpy(), 16, axis=-1))
    upside_down = images[TRIANGLE:].flip(-2)
    ring = images[CIRCLE:CIRCLE + 1].clone()
    ring[..., 26:38, 26:38] = -1
    assert torch.equal(judge(images), torch.tensor([CIRCLE, SQUARE, TRIANGLE]))
    assert torch.all(judge(torch.cat([smeared, streaked, upside_down, ring])) == -1)


def test_judge_rejects_input_that_is_not_a_batch():
    with pytest.raises(ValueError, match="N x C x H x W"):
        judge(torch.zeros(3, 32, 32))


def test_judge_summary_on_a_known_mix():
    noise = torch.rand((1, 3, 32, 32), generator=torch.Generator().manual_seed(3)) * 2 - 1
    shapes = [shape_image("circle"), shape_image("circle", colour=GREEN), shape_image("square")]
    images = torch.cat([*shapes, noise])
    assert judge_summary(images) == pytest.approx(
        {
            "valid_share": 0.75,
            "coverage": 2 / 3,
            "share_circle": 0.5,
            "share_square": 0.25,
            "share_triangle": 0.0,
        }
    )


def coverage_image(coverage: np.ndarray, colour=RED) -> torch.Tensor:
    """A shape given by its per-pixel coverage, in ``colour`` on black, as a 1 x 3 x H x W batch."""
    return to_tensor(np.rint(coverage[..., np.newaxis] * np.asarray(colour, dtype=np.float64)).astype(np.uint8))


def centred_offsets(image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres' distances from the image centre, across and down."""
    offsets = np.arange(image_size) + 0.5 - image_size / 2
    return offsets[np.newaxis, :], offsets[:, np.newaxis]


def rounded_square(image_size: int, side: float, corner_radius: float) -> np.ndarray:
    """The coverage of a centred square whose corners are quarter circles of ``corner_radius`` pixels."""
    dx, dy = (np.abs(offset) - (side / 2 - corner_radius) for offset in centred_offsets(image_size))
    outside = np.hypot(np.maximum(dx, 0), np.maximum(dy, 0)) + np.minimum(np.maximum(dx, dy), 0)
    return np.clip(0.5 - (outside - corner_radius), 0, 1)


def ellipse(image_size: int, diameter: float, width_to_height: float) -> np.ndarray:
    """The coverage of a centred ellipse with the area of a circle of ``diameter``, ``width_to_height`` as wide."""
    dx, dy = centred_offsets(image_size)
    half_width, half_height = diameter / 2 * width_to_height**0.5, diameter / 2 / width_to_height**0.5
    return np.clip(0.5 - (np.hypot(dx / half_width, dy / half_height) - 1) * half_height, 0, 1)


@pytest.mark.parametrize("image_size", [16, 24, 32, 48, 64, 96, 128])
def test_judge_accepts_clean_shapes_at_every_size_from_smallest_to_largest(image_size):
    sides = [low * image_size for low in (0.35, 0.55, 0.75)]  # the dataset's range of sizes
    centre = (image_size / 2, image_size / 2)
    images = torch.cat([to_tensor(render_shape(kind, image_size, centre, side, GREEN))
                        for kind in SHAPE_NAMES for side in sides])
    assert judge(images).tolist() == [label for label in range(3) for _ in sides]


@pytest.mark.parametrize("image_size", [16, 32, 64, 128])
def test_judge_rejects_rounded_squares_and_ellipses(image_size):
    side = 0.55 * image_size
    slightly_rounded = rounded_square(image_size, side, corner_radius=0.1 * side)
    rounded = [rounded_square(image_size, side, corner_radius=share * side) for share in (0.25, 0.3, 0.35)]
    ellipses = [ellipse(image_size, side, ratio) for ratio in (1.1, 1.2, 1 / 1.1)]
    assert judge(coverage_image(slightly_rounded)).item() == SQUARE  # a generator's anti-aliasing, not a miss
    assert judge(torch.cat([coverage_image(c) for c in rounded + ellipses])).tolist() == [-1] * 6


def test_judge_rejects_overlapping_shapes_of_one_colour():
    pairs = [("circle", (13.0, 14.0), "square", (19.0, 18.0)), ("square", (12.0, 16.0), "square", (20.0, 16.0)),
             ("triangle", (14.0, 16.0), "circle", (19.0, 14.0)), ("circle", (13.0, 16.0), "circle", (19.0, 16.0))]
    images = [np.maximum(render_shape(a, 32, at_a, 12.0, RED), render_shape(b, 32, at_b, 12.0, RED))
              for a, at_a, b, at_b in pairs]
    assert torch.all(judge(torch.cat([to_tensor(image) for image in images])) == -1)


@pytest.mark.parametrize("kind", SHAPE_NAMES)
def test_judge_rejects_a_shape_cut_by_the_border(kind):
    whole = render_shape(kind, 32, (16.0, 16.0), 16.0, RED)
    cut = [render_shape(kind, 32, centre, 16.0, RED) for centre in ((4.0, 16.0), (16.0, 28.0), (3.0, 6.0))]
    assert judge(to_tensor(whole)).item() == SHAPE_NAMES.index(kind)
    assert torch.all(judge(torch.cat([to_tensor(image) for image in cut])) == -1)


def test_judge_rejects_blurred_shapes_and_colour_noise_inside_the_shape():
    images = torch.cat([shape_image(kind, 32) for kind in SHAPE_NAMES])
    blurred = torch.from_numpy(ndimage.gaussian_filter(images.numpy(), sigma=(0, 0, 1.5, 1.5)))
    # every pixel of the shape a different hue: a generator that has the outline but not one colour
    inside = (images > -1).any(dim=1, keepdim=True)
    hue_noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(4)) * 0.3
    mottled = torch.where(inside, (images + hue_noise).clamp(-1, 1), images)
    assert torch.all(judge(torch.cat([blurred, mottled])) == -1)
