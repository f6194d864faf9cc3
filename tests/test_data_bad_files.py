"""Bad image files and bad dataset layouts: a one-paragraph DatasetError or a counted skip, never a traceback."""

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from gantrain.data.bad_files import (
    SkipBadFiles,
    Substitute,
    Unreadable,
    UnreadableFileError,
    collate_reporting_bad_files,
)
from gantrain.data.celeba import celeba
from gantrain.data.domains import DomainFolders
from gantrain.data.image_files import BadImageFile, open_image
from gantrain.data.images import image_folder
from gantrain.data.translation import AlignedFolders, UnalignedFolders
from gantrain.errors import ConfigError, DatasetError

BAD_KINDS = ("corrupt", "truncated", "zero_byte", "text")
REASONS = {
    "corrupt": "it is corrupt (",
    "truncated": "it is truncated",
    "zero_byte": "it is empty (0 bytes)",
    "text": "it is not an image Pillow can read",
}
COUNT = 4
"""Images per folder; the bad one is number BAD."""
BAD = 1


def noise(width: int, height: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def encoded(pixels: np.ndarray, image_format: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format)
    return buffer.getvalue()


def write_bad(path: Path, kind: str) -> Path:
    """A file of ``kind`` named ``path``: noise that is damaged, cut in half, empty or plain text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "corrupt":
        data = bytearray(encoded(noise(32, 32, seed=9), "PNG"))
        middle = len(data) // 2
        data[middle : middle + 64] = bytes(64)
        path.write_bytes(bytes(data))
    elif kind == "truncated":
        data = encoded(noise(32, 32, seed=9), "JPEG")
        path.write_bytes(data[: len(data) // 2])
    elif kind == "zero_byte":
        path.write_bytes(b"")
    else:
        path.write_text("This is a text file, not a photo.\n")
    return path


def fill(folder: Path, pixels: Callable[[int], np.ndarray], bad_kind: str | None = None) -> Path:
    """COUNT images 0.png, 1.png, ...; with ``bad_kind`` number BAD is a bad .jpg (sorting in its place)."""
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(COUNT):
        if number == BAD and bad_kind:
            write_bad(folder / f"{number}.jpg", bad_kind)
        else:
            Image.fromarray(pixels(number)).save(folder / f"{number}.png")
    return folder


def square(number: int) -> np.ndarray:
    return noise(16, 16, seed=number)


def pair(number: int) -> np.ndarray:
    return np.concatenate([square(number), square(number)], axis=1)


def folder_dataset(root: Path, bad_kind: str | None) -> tuple[Dataset, Path]:
    fill(root, square, bad_kind)
    return image_folder(str(root), image_size=8), root / f"{BAD}.jpg"


def unaligned_dataset(root: Path, bad_kind: str | None) -> tuple[Dataset, Path]:
    fill(root / "testA", square)
    fill(root / "testB", square, bad_kind)
    dataset = UnalignedFolders(str(root), image_size=8, load_size=8, split="test")  # pairs A and B by index
    return dataset, root / "testB" / f"{BAD}.jpg"


def aligned_dataset(root: Path, bad_kind: str | None) -> tuple[Dataset, Path]:
    fill(root / "test", pair, bad_kind)
    return AlignedFolders(str(root), image_size=8, load_size=8, split="test"), root / "test" / f"{BAD}.jpg"


def domains_dataset(root: Path, bad_kind: str | None) -> tuple[Dataset, Path]:
    fill(root / "test" / "cat", square, bad_kind)
    fill(root / "test" / "dog", square)
    dataset = DomainFolders(str(root), image_size=8, split="test", balanced=False)  # cat 0-3, then dog 4-7
    return dataset, root / "test" / "cat" / f"{BAD}.jpg"


DATASETS = {
    "folder": folder_dataset,
    "unaligned": unaligned_dataset,
    "aligned": aligned_dataset,
    "domains": domains_dataset,
}


def same_item(first, second) -> bool:
    if isinstance(first, dict):
        return first.keys() == second.keys() and all(torch.equal(first[key], second[key]) for key in first)
    return torch.equal(first[0], second[0]) and first[1] == second[1]


def one_paragraph_error(call: Callable[[], object], error_type: type = DatasetError) -> str:
    """The message of the DatasetError ``call`` raises, checked to be one clean paragraph."""
    with pytest.raises(error_type) as raised:
        call()
    message = str(raised.value)
    assert "\n" not in message
    assert "Traceback" not in message and "worker" not in message
    return message


# One function opens every image


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_open_image_names_the_file_and_the_reason(tmp_path: Path, kind: str) -> None:
    file = write_bad(tmp_path / "photo.jpg", kind)
    with pytest.raises(BadImageFile) as raised:
        open_image(file)
    assert raised.value.file == file
    assert raised.value.reason.startswith(REASONS[kind])
    assert isinstance(raised.value, DatasetError)
    assert str(raised.value).startswith(f"The image file '{file}' cannot be used: {REASONS[kind]}")


def test_truncated_png_is_detected_too(tmp_path: Path) -> None:
    data = encoded(noise(32, 32, seed=3), "PNG")
    file = tmp_path / "cut.png"
    file.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadImageFile, match="truncated"):
        open_image(file)


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = (np.arange(64, dtype=np.uint16) * 1024).reshape(8, 8)
    Image.fromarray(ramp).save(tmp_path / "depth.png")
    assert np.array_equal(np.asarray(open_image(tmp_path / "depth.png")), (ramp // 256).astype(np.uint8))


def test_floating_point_images_are_refused(tmp_path: Path) -> None:
    Image.fromarray(np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)).save(tmp_path / "float.tif")
    with pytest.raises(BadImageFile, match="floating-point"):
        open_image(tmp_path / "float.tif")


def loader_error(loader: DataLoader) -> str:
    """The message of the UnreadableFileError that iterating ``loader`` raises, checked to be clean.

    The traceback is dropped at once: it holds the loader's iterator in a
    reference cycle, and an iterator ended by the garbage collector waits
    torch's 5 s timeout for each worker instead of stopping them at once.
    """
    iterator = iter(loader)
    try:
        list(iterator)
    except UnreadableFileError as error:
        message = str(error)
        error.__traceback__ = None
    else:
        pytest.fail("the loader raised no UnreadableFileError")
    del iterator
    assert "\n" not in message
    assert "Traceback" not in message and "worker" not in message
    return message


# The policies, item by item


@pytest.mark.parametrize("kind", BAD_KINDS)
@pytest.mark.parametrize("name", list(DATASETS))
def test_each_dataset_raises_bad_image_file(tmp_path: Path, name: str, kind: str) -> None:
    dataset, bad_file = DATASETS[name](tmp_path / name, kind)
    with pytest.raises(BadImageFile) as raised:
        dataset[BAD]
    assert raised.value.file == bad_file and raised.value.reason.startswith(REASONS[kind])


@pytest.mark.parametrize("name", list(DATASETS))
def test_skip_gives_the_next_good_item_and_names_the_skipped_file(tmp_path: Path, name: str) -> None:
    dataset, bad_file = DATASETS[name](tmp_path / name, "truncated")
    skipping = SkipBadFiles(dataset, "skip")
    assert len(skipping) == len(dataset)
    substitute = skipping[BAD]
    assert isinstance(substitute, Substitute)
    assert substitute.skipped_files == [str(bad_file)]
    assert same_item(substitute.item, dataset[BAD + 1])
    assert same_item(skipping[0], dataset[0])  # good items come back unchanged


@pytest.mark.parametrize("name", list(DATASETS))
def test_fail_gives_a_marker_that_the_collate_turns_into_an_error(tmp_path: Path, name: str) -> None:
    dataset, bad_file = DATASETS[name](tmp_path / name, "text")
    marker = SkipBadFiles(dataset, "fail")[BAD]
    assert isinstance(marker, Unreadable) and not marker.all_items_bad
    assert marker.file == str(bad_file) and marker.reason.startswith(REASONS["text"])
    items = [dataset[0], marker]
    message = one_paragraph_error(lambda: collate_reporting_bad_files(items), UnreadableFileError)
    assert str(bad_file) in message and "not an image" in message and "trainer.bad_files=skip" in message


def test_skip_wraps_around_past_the_last_item(tmp_path: Path) -> None:
    fill(tmp_path, square)
    write_bad(tmp_path / "9.png", "zero_byte")  # sorts last
    dataset = image_folder(str(tmp_path), image_size=8)
    substitute = SkipBadFiles(dataset, "skip")[COUNT]
    assert substitute.skipped_files == [str(tmp_path / "9.png")]
    assert same_item(substitute.item, dataset[0])


def test_skip_with_no_good_file_stops_with_a_clear_message(tmp_path: Path) -> None:
    for kind in BAD_KINDS:
        write_bad(tmp_path / f"{kind}.png", kind)
    marker = SkipBadFiles(image_folder(str(tmp_path), image_size=8), "skip")[2]
    assert marker.all_items_bad
    message = one_paragraph_error(lambda: collate_reporting_bad_files([marker]))
    assert "No item of the dataset could be read" in message and "dataset.path" in message


def test_unknown_policy_is_a_config_error(tmp_path: Path) -> None:
    dataset, _ = folder_dataset(tmp_path, None)
    message = one_paragraph_error(lambda: SkipBadFiles(dataset, "ignore"), ConfigError)
    assert "trainer.bad_files='ignore'" in message and "skip" in message


def test_collate_batches_plain_items_and_reports_nothing(tmp_path: Path) -> None:
    dataset, _ = folder_dataset(tmp_path, None)
    (images, labels), skipped = collate_reporting_bad_files([dataset[0], dataset[1]])
    assert images.shape == (2, 3, 8, 8) and labels.tolist() == [0, 0] and skipped == []


# Through a real DataLoader, in the main process and in worker processes


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("name", ["folder", "unaligned", "aligned"])
def test_loader_skips_and_reports(tmp_path: Path, name: str, num_workers: int) -> None:
    dataset, bad_file = DATASETS[name](tmp_path / name, "corrupt")
    loader = DataLoader(
        SkipBadFiles(dataset, "skip"), batch_size=2, num_workers=num_workers,
        collate_fn=collate_reporting_bad_files,
    )
    reports = [skipped for _, skipped in loader]
    assert reports == [[str(bad_file)], []]  # item 1 of the first batch was replaced


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("name", ["folder", "unaligned", "aligned"])
def test_loader_fails_with_one_clean_paragraph(tmp_path: Path, name: str, num_workers: int) -> None:
    dataset, bad_file = DATASETS[name](tmp_path / name, "truncated")
    loader = DataLoader(
        SkipBadFiles(dataset, "fail"), batch_size=2, num_workers=num_workers,
        collate_fn=collate_reporting_bad_files,
    )
    message = loader_error(loader)
    assert message.startswith(f"The image file '{bad_file}' cannot be used: it is truncated")
    assert message.endswith("counted in TensorBoard as data/skipped_files).")


def test_celeba_faces_use_the_same_check(tmp_path: Path) -> None:
    faces = tmp_path / "img_align_celeba"
    faces.mkdir()
    Image.fromarray(noise(178, 218, seed=0)).save(faces / "000002.jpg")
    write_bad(faces / "000001.jpg", "truncated")
    dataset = celeba(str(tmp_path), image_size=8, split="all")
    assert SkipBadFiles(dataset, "skip")[0].skipped_files == [str(faces / "000001.jpg")]


# Bad layouts


def test_missing_folders_name_the_path_and_the_layout(tmp_path: Path) -> None:
    absent = str(tmp_path / "absent")
    for make, layout in [
        (lambda: image_folder(absent, image_size=8), "searched recursively"),
        (lambda: UnalignedFolders(absent), "trainA/ and trainB/"),
        (lambda: AlignedFolders(absent), "left half"),
        (lambda: DomainFolders(absent), "bash download.sh afhq-dataset"),
    ]:
        message = one_paragraph_error(make)
        assert absent in message and layout in message and "dataset.path=" in message


def test_folders_without_images_say_so(tmp_path: Path) -> None:
    for folder in ("images", "pairs/train", "domains/train/cat", "domains/train/dog"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "readme.txt").write_text("no images")
    for make, empty in [
        (lambda: image_folder(str(tmp_path / "images"), image_size=8), "images"),
        (lambda: AlignedFolders(str(tmp_path / "pairs")), "pairs/train"),
        (lambda: DomainFolders(str(tmp_path / "domains")), "domains/train/cat"),
    ]:
        message = one_paragraph_error(make)
        assert f"'{tmp_path / empty}' contains no images" in message


def test_unaligned_with_one_side_missing_or_empty_names_that_side(tmp_path: Path) -> None:
    fill(tmp_path / "trainA", square)
    message = one_paragraph_error(lambda: UnalignedFolders(str(tmp_path)))
    assert f"'{tmp_path / 'trainB'}' does not exist" in message and "trainA/ and trainB/" in message
    (tmp_path / "trainB").mkdir()
    message = one_paragraph_error(lambda: UnalignedFolders(str(tmp_path)))
    assert f"'{tmp_path / 'trainB'}' contains no images" in message


def test_named_dataset_with_a_missing_side_gives_the_download_command(tmp_path: Path) -> None:
    fill(tmp_path / "horse2zebra" / "trainA", square)
    message = one_paragraph_error(lambda: UnalignedFolders(str(tmp_path / "horse2zebra"), name="horse2zebra"))
    assert f"gantrain-data download horse2zebra --root {tmp_path}" in message


@pytest.mark.parametrize(
    ("size", "expected"), [((33, 16), "33x16 pixels, but its width must be even"), ((32, 32), "not an A|B pair")]
)
def test_aligned_files_that_cannot_be_pairs_are_bad_files(tmp_path: Path, size, expected: str) -> None:
    (tmp_path / "train").mkdir()
    Image.fromarray(noise(*size, seed=0)).save(tmp_path / "train" / "0.png")
    Image.fromarray(pair(1)).save(tmp_path / "train" / "1.png")
    dataset = AlignedFolders(str(tmp_path), image_size=8, load_size=8)
    message = one_paragraph_error(lambda: collate_reporting_bad_files([SkipBadFiles(dataset, "fail")[0]]))
    assert str(tmp_path / "train" / "0.png") in message and expected in message
    assert SkipBadFiles(dataset, "skip")[0].skipped_files == [str(tmp_path / "train" / "0.png")]


def test_channels_follow_the_config_not_the_files(tmp_path: Path) -> None:
    """Grayscale files become three equal channels; with channels=1 colour files become their luma."""
    colour = (200, 100, 50)
    luma = Image.new("RGB", (1, 1), colour).convert("L").getpixel((0, 0)) / 127.5 - 1
    Image.new("L", (16, 16), 255).save(fill(tmp_path / "gray", square) / "9.png")
    fill(tmp_path / "colour", lambda number: np.tile(np.array(colour, dtype=np.uint8), (16, 16, 1)))
    gray_as_rgb = image_folder(str(tmp_path / "gray"), image_size=8, channels=3)[COUNT][0]
    assert torch.equal(gray_as_rgb, torch.ones(3, 8, 8))
    rgb_as_gray = image_folder(str(tmp_path / "colour"), image_size=8, channels=1)[0][0]
    assert rgb_as_gray.shape == (1, 8, 8) and torch.allclose(rgb_as_gray, torch.full((1, 8, 8), luma))
