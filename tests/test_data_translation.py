"""Translation datasets: CycleGAN/pix2pix folder layouts (tiny fake images in tmp_path) and the shapes tasks."""

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import expected_error
from PIL import Image
from scipy import ndimage
from torch.utils.data import DataLoader

from gantrain.data.shapes import SHAPE_NAMES, judge, render_shape
from gantrain.data.shapes_translation import ShapesPaired, ShapesUnpaired, judge_paired, judge_unpaired
from gantrain.data.translation import AlignedFolders, UnalignedFolders

CIRCLE, SQUARE = SHAPE_NAMES.index("circle"), SHAPE_NAMES.index("square")
WIDTH, HEIGHT = 301, 203
"""Neither side a multiple of 4, and wider than high, so every preprocess mode changes the size."""
EXPECTED_SIZES = {  # (height, width) for image_size 64 and load_size 72
    "resize_and_crop": (64, 64),
    "crop": (64, 64),
    "scale_width": (43, 64),
    "scale_width_and_crop": (64, 64),
    "none": (204, 300),
}


def noise(width: int = WIDTH, height: int = HEIGHT, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def save(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def solid(value: int, width: int = 80, height: int = 70) -> np.ndarray:
    return np.full((height, width, 3), value, dtype=np.uint8)


def unaligned_folder(root: Path, counts: dict[str, int], image: Callable[[int], np.ndarray]) -> Path:
    """``counts[folder]`` images per folder, the j-th being ``image(j)``, named so they sort by j."""
    for folder, count in counts.items():
        for number in range(count):
            save(root / folder / f"{number:03d}.png", image(number))
    return root


def aligned_folder(
    root: Path, split: str = "train", count: int = 2, width: int = WIDTH, height: int = HEIGHT
) -> Path:
    """Files whose left and right halves are the same noise, so any misalignment shows as A != B."""
    for number in range(count):
        half = noise(width, height, seed=number)
        save(root / split / f"{number}.png", np.concatenate([half, half], axis=1))
    return root


def as_batch(pixels: np.ndarray) -> torch.Tensor:
    """A uint8 H x W x 3 rendering as a 1 x 3 x H x W tensor in [-1, 1]."""
    return torch.from_numpy(pixels.astype(np.float32)).permute(2, 0, 1).unsqueeze(0) / 127.5 - 1


# Folder datasets


@pytest.mark.parametrize("preprocess", list(EXPECTED_SIZES))
@pytest.mark.parametrize("split", ["train", "test"])
def test_each_preprocess_mode_gives_its_size(tmp_path: Path, preprocess: str, split: str) -> None:
    unaligned_folder(
        tmp_path / "unaligned", {f"{split}A": 1, f"{split}B": 1}, image=lambda seed: noise(seed=seed)
    )
    aligned_folder(tmp_path / "aligned", split)
    options = {"image_size": 64, "load_size": 72, "preprocess": preprocess, "split": split}
    for dataset in (
        UnalignedFolders(str(tmp_path / "unaligned"), **options),
        AlignedFolders(str(tmp_path / "aligned"), **options),
    ):
        item = dataset[0]
        for side in "AB":
            assert item[side].shape == (3, *EXPECTED_SIZES[preprocess])
            assert item[side].dtype == torch.float32
            assert -1 <= item[side].min() and item[side].max() <= 1


@pytest.mark.parametrize("preprocess", ["resize_and_crop", "crop", "scale_width_and_crop", "none"])
def test_aligned_halves_share_the_random_crop_and_flip(tmp_path: Path, preprocess: str) -> None:
    dataset = AlignedFolders(
        str(aligned_folder(tmp_path, count=3)), image_size=64, load_size=72, preprocess=preprocess
    )
    outputs = set()
    for seed in range(12):
        torch.manual_seed(seed)
        for index in range(len(dataset)):
            item = dataset[index]
            assert torch.equal(item["A"], item["B"])
            outputs.add((index, item["A"].numpy().tobytes()))
    # The parameters really vary: "none" only flips (two outputs per file), the other modes also crop.
    if preprocess == "none":
        assert len(outputs) == 2 * len(dataset)
    else:
        assert len(outputs) > 2 * len(dataset)


def test_test_split_crops_the_centre_and_never_flips(tmp_path: Path) -> None:
    dataset = AlignedFolders(
        str(aligned_folder(tmp_path, "test")), image_size=64, preprocess="crop", split="test"
    )
    first = dataset[1]["A"]
    for seed in range(5):
        torch.manual_seed(seed)
        assert torch.equal(dataset[1]["A"], first)
    top, left = round((HEIGHT - 64) / 2), round((WIDTH - 64) / 2)
    centre = noise(seed=1)[top : top + 64, left : left + 64]
    assert torch.allclose(first, as_batch(centre)[0], atol=1e-6)


def test_aligned_test_split_falls_back_to_val(tmp_path: Path) -> None:
    dataset = AlignedFolders(str(aligned_folder(tmp_path, "val", count=4)), image_size=32, split="test")
    assert len(dataset) == 4


def test_unaligned_length_is_the_larger_domain_and_a_cycles(tmp_path: Path) -> None:
    """Solid images whose grey level names the file, so each item shows which files it used."""
    root = unaligned_folder(
        tmp_path, {"trainA": 3, "trainB": 7, "testA": 2, "testB": 5}, image=lambda n: solid(10 * n)
    )
    train = UnalignedFolders(str(root), image_size=32, load_size=40)
    test = UnalignedFolders(str(root), image_size=32, load_size=40, split="test")
    assert (len(train), len(test)) == (7, 5)

    def file_number(image: torch.Tensor) -> int:
        return round((float(image.mean()) + 1) * 127.5 / 10)

    assert [file_number(train[index]["A"]) for index in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert [(file_number(item["A"]), file_number(item["B"])) for item in test] == [
        (0, 0),
        (1, 1),
        (0, 2),
        (1, 3),
        (0, 4),
    ]

    def random_b_numbers(seed: int) -> list[int]:
        torch.manual_seed(seed)
        return [file_number(train[index % 7]["B"]) for index in range(40)]

    assert random_b_numbers(3) == random_b_numbers(3)
    assert random_b_numbers(3) != random_b_numbers(4)
    assert set(random_b_numbers(3)) == set(range(7))


def test_unaligned_sides_get_their_own_crops(tmp_path: Path) -> None:
    root = unaligned_folder(tmp_path, {"trainA": 1, "trainB": 1}, image=lambda n: noise(seed=0))
    dataset = UnalignedFolders(str(root), image_size=64, preprocess="crop")
    torch.manual_seed(0)
    assert sum(not torch.equal(item["A"], item["B"]) for item in (dataset[0] for _ in range(10))) >= 8


def test_pickled_datasets_batch_as_dicts_of_a_and_b(tmp_path: Path) -> None:
    root = unaligned_folder(tmp_path, {"trainA": 3, "trainB": 2}, image=lambda n: noise(seed=n))
    dataset = pickle.loads(
        pickle.dumps(UnalignedFolders(str(root), image_size=16, load_size=20))
    )  # as for workers
    batch = next(iter(DataLoader(dataset, batch_size=3)))
    assert batch["A"].shape == batch["B"].shape == (3, 3, 16, 16)


def test_grayscale_uses_pil_luma(tmp_path: Path) -> None:
    colour = (200, 100, 50)
    save(tmp_path / "train" / "0.png", np.tile(np.array(colour, dtype=np.uint8), (30, 60, 1)))
    luma = Image.new("RGB", (1, 1), colour).convert("L").getpixel((0, 0))
    item = AlignedFolders(str(tmp_path), image_size=16, load_size=20, channels=1)[0]
    for side in "AB":
        assert item[side].shape == (1, 16, 16)
        assert torch.allclose(item[side], torch.full((1, 16, 16), luma / 127.5 - 1))


def test_missing_or_empty_folders_explain_the_layout(tmp_path: Path) -> None:
    layout = ("trainA/", "trainB/", "testA/", "testB/", "dataset.path=")
    expected_error(lambda: UnalignedFolders(None), "dataset.path is unset", *layout)
    expected_error(lambda: UnalignedFolders(str(tmp_path / "absent")), str(tmp_path / "absent"), *layout)
    root = unaligned_folder(tmp_path / "data", {"trainA": 1}, image=lambda n: noise(seed=n))
    expected_error(lambda: UnalignedFolders(str(root)), str(root / "trainB"), *layout)
    (root / "trainB").mkdir()
    (root / "trainB" / "notes.txt").write_text("no image")
    expected_error(lambda: UnalignedFolders(str(root)), str(root / "trainB"), "contains no images", *layout)
    expected_error(
        lambda: AlignedFolders(str(root), split="test"), str(root / "test"), "train/", "val/", "left half"
    )


def test_aligned_images_need_an_even_width(tmp_path: Path) -> None:
    save(tmp_path / "train" / "odd.png", noise(51, 25))
    dataset = AlignedFolders(str(tmp_path), image_size=16, load_size=20)
    expected_error(lambda: dataset[0], str(tmp_path / "train" / "odd.png"), "51x25", "even")


def test_bad_options_and_too_small_crops_are_explained(tmp_path: Path) -> None:
    root = aligned_folder(tmp_path, width=40, height=30, count=1)
    expected_error(
        lambda: AlignedFolders(str(root), preprocess="zoom"), "dataset.preprocess='zoom'", "resize_and_crop"
    )
    expected_error(lambda: AlignedFolders(str(root), image_size=64, load_size=32), "dataset.load_size=32")
    expected_error(lambda: AlignedFolders(str(root), split="val"), "dataset.split='val'")
    expected_error(lambda: AlignedFolders(str(root), channels=4), "dataset.channels=4")
    expected_error(
        lambda: AlignedFolders(str(root), image_size=32, preprocess="crop")[0], "40x30", "resize_and_crop"
    )


# Shapes translation datasets


def stacked(dataset, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    items = [dataset[index] for index in range(count)]
    return torch.stack([item["A"] for item in items]), torch.stack([item["B"] for item in items])


@pytest.mark.parametrize("dataset_class", [ShapesUnpaired, ShapesPaired])
def test_shapes_items_are_deterministic_and_independent_of_order(dataset_class) -> None:
    first, second = dataset_class(seed=5), dataset_class(seed=5)
    late = first[17]
    for index in range(17):
        first[index]
    for side in "AB":
        assert torch.equal(first[17][side], late[side])
        assert torch.equal(second[17][side], late[side])
    other_seed = dataset_class(seed=6)[17]
    assert not torch.equal(other_seed["A"], late["A"])


@pytest.mark.parametrize("dataset_class", [ShapesUnpaired, ShapesPaired])
@pytest.mark.parametrize(("image_size", "channels"), [(32, 3), (48, 1)])
def test_shapes_items_are_float_images_in_range(dataset_class, image_size: int, channels: int) -> None:
    dataset = dataset_class(image_size=image_size, channels=channels, num_samples=4)
    assert len(dataset) == 4
    for item in dataset:
        for side in "AB":
            assert item[side].shape == (channels, image_size, image_size)
            assert item[side].dtype == torch.float32
            assert item[side].min() == -1 and item[side].max() <= 1


@pytest.mark.parametrize("dataset_class", [ShapesUnpaired, ShapesPaired])
def test_train_and_test_share_no_image(dataset_class) -> None:
    train_a, train_b = stacked(dataset_class(split="train", num_samples=100), 100)
    test_a, test_b = stacked(dataset_class(split="test", num_samples=100), 100)
    train_images = {image.numpy().tobytes() for image in torch.cat([train_a, train_b])}
    assert not any(image.numpy().tobytes() in train_images for image in torch.cat([test_a, test_b]))


def test_unpaired_a_is_a_circle_and_b_a_square() -> None:
    dataset = ShapesUnpaired(num_samples=200)
    circles, squares = stacked(dataset, 200)
    assert (judge(circles) == CIRCLE).all()
    assert (judge(squares) == SQUARE).all()
    attributes = dataset.attributes(3)
    assert attributes["kind"] == "circle" and len(attributes["colour"]) == 3
    assert torch.equal(as_batch(render_shape(image_size=32, **attributes))[0], circles[3])


def test_paired_a_is_the_outline_of_the_filled_b() -> None:
    dataset = ShapesPaired(num_samples=200)
    outlines, filled = stacked(dataset, 200)
    kinds = torch.tensor([SHAPE_NAMES.index(dataset.attributes(index)["kind"]) for index in range(200)])
    assert (judge(filled) == kinds).all()
    assert set(kinds.tolist()) == {0, 1, 2}
    outline_masks, filled_masks = outlines.amax(dim=1) > -1, filled.amax(dim=1) > -1
    assert not (outline_masks & ~filled_masks).any()
    for outline_mask in outline_masks.numpy():
        assert (
            ndimage.binary_fill_holes(outline_mask) & ~outline_mask
        ).any()  # a ring around an empty inside


# Judges


def squares_for(dataset: ShapesUnpaired, count: int, change=lambda attributes: attributes) -> torch.Tensor:
    """The ideal translation of each circle, a square with its colour, centre and size, after ``change``."""
    renders = [
        render_shape(image_size=32, **change({**dataset.attributes(i), "kind": "square"}))
        for i in range(count)
    ]
    return torch.cat([as_batch(render) for render in renders])


def test_judge_unpaired_on_ground_truth() -> None:
    dataset = ShapesUnpaired(num_samples=200)
    circles, independent_squares = stacked(dataset, 200)
    all_ones = dict.fromkeys(["shape_correct", "colour_kept", "position_kept", "all_kept"], 1.0)
    assert judge_unpaired(circles, squares_for(dataset, 200)) == all_ones

    def other_colour(attributes: dict) -> dict:
        red, green, blue = attributes["colour"]
        return {
            **attributes,
            "colour": (green, blue, red),
        }  # saturated, so some channel moves by at least 0.3

    recoloured = judge_unpaired(circles, squares_for(dataset, 200, other_colour))
    assert recoloured == {"shape_correct": 1.0, "colour_kept": 0.0, "position_kept": 1.0, "all_kept": 0.0}

    def shifted(attributes: dict) -> dict:
        shift = 0.08 * 32  # beyond the 1.6 px tolerance (diagonally), and still 2 px off the border
        x, y = attributes["center"]
        return {
            **attributes,
            "center": (x + (shift if x < 16 else -shift), y + (shift if y < 16 else -shift)),
        }

    moved = judge_unpaired(circles, squares_for(dataset, 200, shifted))
    assert moved == {"shape_correct": 1.0, "colour_kept": 1.0, "position_kept": 0.0, "all_kept": 0.0}
    unchanged = judge_unpaired(circles, circles)
    assert unchanged == {"shape_correct": 0.0, "colour_kept": 1.0, "position_kept": 1.0, "all_kept": 0.0}
    unrelated = judge_unpaired(circles, independent_squares)
    assert unrelated["shape_correct"] == 1.0 and unrelated["all_kept"] < 0.05
    blank = judge_unpaired(circles, -torch.ones_like(circles))
    assert blank == dict.fromkeys(all_ones, 0.0)


def test_judge_unpaired_rejects_bad_input() -> None:
    images = -torch.ones(2, 3, 32, 32)
    with pytest.raises(ValueError, match="hexagon"):
        judge_unpaired(images, images, target_kind="hexagon")
    with pytest.raises(ValueError, match="batches"):
        judge_unpaired(images, images[:1])


def test_judge_paired_measures_pixel_fidelity() -> None:
    _, targets = stacked(ShapesPaired(num_samples=16, image_size=64), 16)
    assert judge_paired(targets, targets) == {"l1": 0.0, "psnr": 100.0}
    grey = torch.zeros(8, 3, 64, 64)  # mid-grey, so neither the offset nor the noise below leave [-1, 1]
    offset = judge_paired(grey + 0.2, grey)
    assert offset["l1"] == pytest.approx(0.2) and offset["psnr"] == pytest.approx(20.0)  # 0.1 in [0, 1] units
    torch.manual_seed(0)
    noisy = judge_paired(grey + 2 * 0.05 * torch.randn_like(grey), grey)
    assert noisy["psnr"] == pytest.approx(-20 * np.log10(0.05), abs=0.5)
    assert noisy["l1"] == pytest.approx(2 * 0.05 * np.sqrt(2 / np.pi), rel=0.02)  # mean |N(0, sigma)|
    with pytest.raises(ValueError, match="batches"):
        judge_paired(targets, targets[:, :1])
