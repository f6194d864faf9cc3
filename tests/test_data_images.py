"""Tests for the image datasets: tiny fake data in tmp_path, never the network."""

import hashlib
import pickle
import struct
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision.datasets.utils
from helpers import expected_error
from PIL import Image
from torchvision.datasets import CIFAR10, MNIST

from gantrain.data.celeba import celeba
from gantrain.data.images import cifar10, image_folder, mnist


def save_image(path: Path, mode: str, size: tuple[int, int], color) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    """Nested folders with mixed formats, sizes and colour modes plus a file that is no image."""
    root = tmp_path / "images"
    save_image(root / "b.png", "L", (40, 30), 200)
    save_image(root / "a.JPG", "RGB", (30, 50), (255, 0, 0))
    save_image(root / "sub" / "c.png", "RGBA", (24, 24), (0, 255, 0, 128))
    save_image(root / "sub" / "deeper" / "d.bmp", "RGB", (17, 33), (0, 0, 255))
    save_image(root / "sub" / "e.webp", "RGB", (20, 20), (10, 20, 30))
    save_image(root / "f.tiff", "RGB", (20, 20), (40, 50, 60))
    (root / "notes.txt").write_text("not an image")
    return root


def test_image_folder_finds_images_recursively_in_sorted_order(mixed_folder: Path) -> None:
    dataset = image_folder(str(mixed_folder), image_size=16)
    relative = [file.relative_to(mixed_folder).as_posix() for file in dataset.files]
    assert relative == ["a.JPG", "b.png", "f.tiff", "sub/c.png", "sub/deeper/d.bmp", "sub/e.webp"]


@pytest.mark.parametrize("channels", [1, 3])
def test_image_folder_yields_normalised_square_tensors(mixed_folder: Path, channels: int) -> None:
    dataset = image_folder(str(mixed_folder), image_size=16, channels=channels)
    for image, label in dataset:
        assert image.dtype == torch.float32
        assert image.shape == (channels, 16, 16)
        assert image.min() >= -1.0 and image.max() <= 1.0
        assert label == 0


def test_image_folder_is_deterministic(mixed_folder: Path) -> None:
    first = image_folder(str(mixed_folder), image_size=8)
    second = image_folder(str(mixed_folder), image_size=8)
    for (image_a, _), (image_b, _) in zip(first, second, strict=True):
        assert torch.equal(image_a, image_b)


def test_grayscale_becomes_three_equal_channels(tmp_path: Path) -> None:
    save_image(tmp_path / "gray.png", "L", (10, 10), 255)
    image, _ = image_folder(str(tmp_path), image_size=4, channels=3)[0]
    assert torch.equal(image, torch.ones(3, 4, 4))


def test_rgba_becomes_one_gray_channel(tmp_path: Path) -> None:
    save_image(tmp_path / "red.png", "RGBA", (10, 10), (255, 0, 0, 0))
    image, _ = image_folder(str(tmp_path), image_size=4, channels=1)[0]
    red_luma = 76 / 255 * 2 - 1  # PIL's ITU-R 601 grayscale of pure red
    assert image.shape == (1, 4, 4)
    assert torch.allclose(image, torch.full_like(image, red_luma), atol=1e-6)


def test_shorter_side_is_resized_then_centre_cropped(tmp_path: Path) -> None:
    stripes = Image.new("RGB", (120, 20), (255, 0, 0))  # red | green | blue, 40 pixels each
    stripes.paste((0, 255, 0), (40, 0, 80, 20))
    stripes.paste((0, 0, 255), (80, 0, 120, 20))
    stripes.save(tmp_path / "stripes.png")
    image, _ = image_folder(str(tmp_path), image_size=8)[0]
    green = torch.tensor([-1.0, 1.0, -1.0]).view(3, 1, 1).expand(3, 8, 8)
    assert torch.allclose(image, green, atol=1e-6)


def test_image_folder_without_path_explains_what_to_set() -> None:
    expected_error(lambda: image_folder(None, image_size=8), "dataset.path=", ".png")


def test_image_folder_missing_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    expected_error(lambda: image_folder(str(missing), image_size=8), str(missing), "dataset.path=")


def test_image_folder_path_that_is_a_file_is_named(tmp_path: Path) -> None:
    file = save_image(tmp_path / "one.png", "RGB", (8, 8), 0)
    expected_error(lambda: image_folder(str(file), image_size=8), str(file), "not a folder", "dataset.path=")


def test_image_folder_without_images_lists_extensions(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images here")
    expected_error(lambda: image_folder(str(tmp_path), image_size=8), str(tmp_path), ".jpg", "dataset.path=")


def test_unsupported_channels_lists_valid_choices(mixed_folder: Path) -> None:
    expected_error(lambda: image_folder(str(mixed_folder), image_size=8, channels=2), "dataset.channels=1")


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) in the big-endian idx format of the MNIST files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    magic = 0x0800 + array.ndim  # 0x08 = unsigned byte, then the number of dimensions
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_fake_mnist(root: Path, count: int = 5) -> np.ndarray:
    """Write ``count`` constant-grey 28x28 digits per split; return the training labels."""
    grey_levels = np.linspace(0, 255, count).astype(np.uint8)
    images = np.broadcast_to(grey_levels[:, None, None], (count, 28, 28))
    labels = np.arange(count, dtype=np.uint8) % 10
    raw = root / "MNIST" / "raw"
    for split in ("train", "t10k"):
        write_idx(raw / f"{split}-images-idx3-ubyte", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
    return labels


@pytest.mark.parametrize("channels", [1, 3])
def test_mnist_loads_torchvision_files(tmp_path: Path, channels: int) -> None:
    labels = write_fake_mnist(tmp_path)
    dataset = mnist(str(tmp_path), image_size=32, channels=channels, download=False)
    assert len(dataset) == len(labels)
    for index, (image, label) in enumerate(dataset):
        assert image.shape == (channels, 32, 32)
        assert label == labels[index]
    assert torch.allclose(dataset[0][0], torch.full((channels, 32, 32), -1.0))
    assert torch.allclose(dataset[len(labels) - 1][0], torch.ones(channels, 32, 32))


def refuse_download(*args, **kwargs) -> None:
    raise URLError("no network in tests")


def test_mnist_offline_download_names_sources_and_layout(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(torchvision.datasets.utils, "download_url", refuse_download)
    message = expected_error(lambda: mnist(str(tmp_path), image_size=32, channels=1, download=True), str(tmp_path), "offline")
    for mirror in MNIST.mirrors:
        assert mirror in message
    assert str(tmp_path / "MNIST" / "raw") in message
    assert "train-images-idx3-ubyte" in message


def test_mnist_missing_files_without_download(tmp_path: Path) -> None:
    expected_error(
        lambda: mnist(str(tmp_path), image_size=32, channels=1, download=False),
        str(tmp_path / "MNIST" / "raw"),
        "t10k-labels-idx1-ubyte",
        "dataset.path=",
    )


def write_fake_cifar10(root: Path, monkeypatch, per_batch: int = 2) -> list[int]:
    """Write pickled CIFAR-10 batches and register their md5s, which torchvision checks.

    The real md5s cannot be matched by fake files, so the test points the
    class's checksum lists at the fakes; the loading code itself is unchanged.
    """
    folder = root / CIFAR10.base_folder
    folder.mkdir(parents=True)

    def dump(name: str, content: dict) -> list[str]:
        path = folder / name
        path.write_bytes(pickle.dumps(content))
        return [name, hashlib.md5(path.read_bytes()).hexdigest()]

    def batch(name: str, first_label: int) -> list[str]:
        labels = [(first_label + offset) % 10 for offset in range(per_batch)]
        pixels = (np.arange(per_batch * 3072) % 256).astype(np.uint8).reshape(per_batch, 3072)
        return dump(name, {"data": pixels, "labels": labels})

    train = [batch(name, index * per_batch) for index, (name, _) in enumerate(CIFAR10.train_list)]
    test = [batch(name, 0) for name, _ in CIFAR10.test_list]
    _, meta_md5 = dump(CIFAR10.meta["filename"], {CIFAR10.meta["key"]: [str(label) for label in range(10)]})
    monkeypatch.setattr(CIFAR10, "train_list", train)
    monkeypatch.setattr(CIFAR10, "test_list", test)
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": meta_md5})
    return [index % 10 for index in range(len(train) * per_batch)]


def test_cifar10_loads_torchvision_files(tmp_path: Path, monkeypatch) -> None:
    labels = write_fake_cifar10(tmp_path, monkeypatch)
    dataset = cifar10(str(tmp_path), image_size=16, download=False)
    assert [label for _, label in dataset] == labels
    image, _ = dataset[0]
    assert image.shape == (3, 16, 16)
    assert image.dtype == torch.float32
    assert image.min() >= -1.0 and image.max() <= 1.0


def test_cifar10_offline_download_names_url_and_layout(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(torchvision.datasets.utils, "download_url", refuse_download)
    expected_error(
        lambda: cifar10(str(tmp_path), image_size=32, download=True),
        CIFAR10.url,
        "offline",
        str(tmp_path / "cifar-10-batches-py"),
        "data_batch_5",
    )


def test_cifar10_missing_files_without_download(tmp_path: Path) -> None:
    expected_error(
        lambda: cifar10(str(tmp_path), image_size=32, download=False), str(tmp_path), "cifar-10-batches-py", "dataset.path="
    )


@pytest.fixture
def celeba_root(tmp_path: Path) -> Path:
    """Two 178x218 'faces': a white centre square between 20-pixel black bands that the crop removes."""
    image_dir = tmp_path / "celeba" / "img_align_celeba"
    image_dir.mkdir(parents=True)
    for name in ("000002.jpg", "000001.jpg"):
        face = Image.new("RGB", (178, 218), (0, 0, 0))
        face.paste((255, 255, 255), (0, 20, 178, 198))
        face.save(image_dir / name, quality=100)
    return image_dir.parent


@pytest.mark.parametrize("subfolder", ["", "img_align_celeba"])
def test_celeba_accepts_parent_or_image_folder(celeba_root: Path, subfolder: str) -> None:
    dataset = celeba(str(celeba_root / subfolder), image_size=16, split="all")  # train holds out 2,000 faces
    assert [file.name for file in dataset.files] == ["000001.jpg", "000002.jpg"]
    image, label = dataset[0]
    assert image.shape == (3, 16, 16)
    assert label == 0
    assert image.min() > 0.95  # only the white face square survives the 178x178 centre crop


def test_celeba_missing_folder_points_to_official_page(tmp_path: Path) -> None:
    missing = tmp_path / "celeba"
    expected_error(
        lambda: celeba(str(missing)),
        str(missing),
        "http://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
        "img_align_celeba",
        "dataset.path=",
    )


def test_celeba_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "img_align_celeba").mkdir()
    expected_error(lambda: celeba(str(tmp_path)), str(tmp_path / "img_align_celeba"), "dataset.path=")


def test_celeba_without_path() -> None:
    expected_error(lambda: celeba(None), "dataset.path=", "img_align_celeba")
